// A refused submission → its messages by form field, and the rest as one general line.
// A 422 names its fields; another refusal (a 400 about the environment, a 403 about
// mounts) is put next to a field only when its words name that one field clearly.
import type { ApiErrorItem } from '../types'
import { ApiError } from './api'
import type { FieldErrors } from './submitBody'

const NAMED_BY: [string, RegExp][] = [
  ['command', /\bcommand\b/i],
  ['container', /\bcontainer environment\b/i],
  ['cores', /\bcores?\b/i],
  ['memory', /\bmemory\b/i],
  ['gpus', /\b\d+ GPUs?\b|--gpus\b/i],
  ['env', /\benvironment variable|\bthe environment is\b/i],
  ['mounts', /\bmounts?\b/i],
  ['timeout', /\btime ?out\b/i],
  ['priority', /\bpriority\b/i],
  ['targets', /\btargets?\b|\bunknown node\b|\bNUMA\b|\bGPU id\b/i],
  ['ssh_key', /\bSSH key\b|\bpublic key\b/i],
]

/** The one field of `fields` that `message` names, or null (none, or more than one). */
export function fieldNamedBy(message: string, fields: string[]): string | null {
  const named = NAMED_BY.filter(([field, words]) => fields.includes(field) && words.test(message))
  return named.length === 1 ? named[0][0] : null
}

/** `{ byField, general }` for `exc`, an error from submitting a form with `fields`. */
export function errorsByField(exc: unknown, fields: string[]): { byField: FieldErrors; general: string } {
  if (!(exc instanceof ApiError)) return { byField: {}, general: String((exc && (exc as Error).message) || exc) }
  const byField: FieldErrors = {}
  const general: string[] = []
  const items: ApiErrorItem[] = exc.errors && exc.errors.length ? exc.errors : [{ loc: [], msg: exc.detail }]
  for (const item of items) {
    const loc = (item.loc || []).filter((p) => p !== 'body')
    const where = loc.length ? String(loc[0]) : null
    const field = where ? (fields.includes(where) ? where : null) : fieldNamedBy(item.msg, fields)
    if (field) byField[field] = byField[field] ? `${byField[field]}; ${item.msg}` : item.msg
    else general.push(where ? `${loc.join('.')}: ${item.msg}` : item.msg)
  }
  return { byField, general: general.join('; ') }
}
