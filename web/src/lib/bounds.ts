// The API's bounds on a submission (kawa.protocol.bounds), to check a form before it is sent.

export const MAX_COMMAND_ARGS = 4096
export const MAX_ARGUMENT = 128 * 1024
export const MAX_COMMAND_TOTAL = 128 * 1024
export const MAX_ENV_VARS = 256
export const MAX_ENV_KEY = 256
export const MAX_ENV_VALUE = 32 * 1024
export const MAX_ENV_TOTAL = 256 * 1024
export const MAX_MOUNTS = 64
export const MAX_TARGETS = 256
export const MAX_PATH = 4096
export const MAX_TASK_NAME = 128
export const MAX_CORES = 4096
export const MAX_GPUS = 64
export const MAX_TIMEOUT = 366 * 24 * 3600
export const MIN_PRIORITY = -1000
export const MAX_PRIORITY = 1000

const BIDI_CONTROLS = new Set('\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069')
const LINE_BREAKS = new Set('\u2028\u2029')

/** Characters in `text`, counted as Python counts them (code points, not UTF-16 units). */
export function length(text: string): number {
  return [...text].length
}

/** `text` quoted as Python's repr() writes it, so messages read as the host's do. */
export function repr(text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'"
  let out = ''
  for (const ch of text) {
    const code = ch.codePointAt(0) as number
    if (ch === '\\' || ch === quote) out += `\\${ch}`
    else if (ch === '\n') out += '\\n'
    else if (ch === '\r') out += '\\r'
    else if (ch === '\t') out += '\\t'
    else if (ch !== ' ' && /[\p{C}\p{Z}]/u.test(ch)) {
      if (code < 0x100) out += `\\x${code.toString(16).padStart(2, '0')}`
      else if (code < 0x10000) out += `\\u${code.toString(16).padStart(4, '0')}`
      else out += `\\U${code.toString(16).padStart(8, '0')}`
    } else out += ch
  }
  return quote + out + quote
}

/** Why `text` cannot be a name (a control, line-break or bidi-override character), or null. */
export function nameProblem(text: string): string | null {
  for (const ch of text) {
    if (/\p{Cc}/u.test(ch) || LINE_BREAKS.has(ch)) return `control character ${repr(ch)} is not allowed in a name`
    if (BIDI_CONTROLS.has(ch)) return `bidirectional override ${repr(ch)} is not allowed in a name`
  }
  return null
}
