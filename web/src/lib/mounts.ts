// Bind mounts read as the host reads them (kawa.core.mounts): SRC:DST[:ro|:rw], both
// paths absolute, no '..', the target not '/'.
import type { Mount } from '../types'
import { MAX_PATH, length, repr } from './bounds'

/** Whether `path` is '/' once normalised as Python's posixpath.normpath does ('//' is not). */
function isRoot(path: string): boolean {
  const exactlyTwo = path.startsWith('//') && !path.startsWith('///')
  return path.startsWith('/') && !exactlyTwo && path.split('/').every((part) => part === '' || part === '.')
}

function checkPath(label: string, path: string): void {
  if (!path.startsWith('/')) throw new Error(`mount ${label} must be an absolute path, got ${repr(path)}`)
  if (path.includes('\0') || path.split('/').includes('..')) throw new Error(`mount ${label} ${repr(path)} may not contain '..' or NUL`)
  if (length(path) > MAX_PATH) throw new Error(`mount ${label} is longer than ${MAX_PATH} characters`)
}

/** `{ source, target, read_only }` from `text`; throws the host's message when it is not one. */
export function parseMount(text: string): Mount {
  const parts = text.split(':')
  let mode = 'rw'
  if (parts.length === 3) mode = parts.pop() as string
  if (parts.length !== 2 || (mode !== 'ro' && mode !== 'rw')) throw new Error(`bad mount ${repr(text)}: expected SRC:DST[:ro|:rw]`)
  const [source, target] = parts
  checkPath('source', source)
  checkPath('target', target)
  if (isRoot(target)) throw new Error("mount target may not be '/'")
  return { source, target, read_only: mode === 'ro' }
}
