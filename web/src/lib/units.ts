// Memory sizes and durations read as the host reads them (kawa.core.units): the same
// forms accepted, the same refusals, in the same words.
import { repr } from './bounds'

export const MEMORY_FORMS =
  'a positive number of bytes with an optional unit: 1024, 512M, 4G, 1.5G, 4GB, 2Gi, 4GiB ' +
  '(K/M/G/T are 1000-based, Ki/Mi/Gi/Ti are 1024-based)'
export const DURATION_FORMS =
  'a positive duration: 90 (seconds), 90s, 5m, 2h, 1d, 1h30m, 1.5h, 500ms ' +
  '(units d, h, m, s, ms, largest first, each at most once)'
export const MAX_MEMORY = 2n ** 63n - 1n

const MEMORY_UNITS = new Map([
  ['', 1n], ['k', 10n ** 3n], ['m', 10n ** 6n], ['g', 10n ** 9n], ['t', 10n ** 12n],
  ['ki', 2n ** 10n], ['mi', 2n ** 20n], ['gi', 2n ** 30n], ['ti', 2n ** 40n],
])
const DURATION_UNITS = new Map([['d', 86400], ['h', 3600], ['m', 60], ['s', 1], ['ms', 0.001]])
const DURATION_ORDER = [...DURATION_UNITS.keys()]

// Python's \s under re.ASCII, and the characters its str.strip() removes.
const SPACE = '[ \\t\\n\\r\\f\\v]'
const STRIPPED = '[\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]'
const EDGES = new RegExp(`^${STRIPPED}+|${STRIPPED}+$`, 'g')
const NUMBER = '(?:[0-9]+(?:\\.[0-9]*)?|\\.[0-9]+)'
const MEMORY_RE = new RegExp(`^([+-]?)(${NUMBER})${SPACE}*([A-Za-z]*)$`)
const PLAIN_NUMBER_RE = new RegExp(`^${NUMBER}$`)
const DURATION_PART_RE = new RegExp(`(${NUMBER})${SPACE}*([A-Za-z]+)${SPACE}*`, 'y')

function strip(text: string): string {
  return text.replace(EDGES, '')
}

/** `number` (decimal text) times `factor`, rounded half up, exactly. */
function scaled(number: string, factor: bigint): bigint {
  const [whole, fraction = ''] = number.split('.')
  const value = BigInt((whole || '0') + fraction) * factor
  const divisor = 10n ** BigInt(fraction.length)
  const rounded = value / divisor
  return 2n * (value % divisor) >= divisor ? rounded + 1n : rounded
}

function memoryError(text: string, reason: string): Error {
  return new Error(`invalid memory size ${repr(text)}: ${reason}; expected ${MEMORY_FORMS}`)
}

/** Bytes named by `text` ("512M" → 512000000n), as a BigInt; throws the host's message. */
export function parseMemory(text: string): bigint {
  const stripped = strip(text)
  if (!stripped) throw memoryError(text, 'it is empty')
  const match = MEMORY_RE.exec(stripped)
  if (!match) throw memoryError(text, 'it is not a number with a unit')
  const [, sign, number, unitText] = match
  if (sign === '-') throw memoryError(text, 'it is negative')
  let unit = unitText.toLowerCase()
  if (unit.endsWith('b')) unit = unit.slice(0, -1)
  const factor = MEMORY_UNITS.get(unit)
  if (factor === undefined) throw memoryError(text, `unknown unit ${repr(unitText)}`)
  const bytes = scaled(number, factor)
  if (bytes <= 0n) throw memoryError(text, 'it must be at least one byte')
  if (bytes > MAX_MEMORY) throw memoryError(text, `it is larger than ${MAX_MEMORY} bytes`)
  return bytes
}

function durationError(text: string, reason: string): Error {
  return new Error(`invalid duration ${repr(text)}: ${reason}; expected ${DURATION_FORMS}`)
}

/** Seconds named by `text` ("1h30m" → 5400); throws the host's message. */
export function parseDuration(text: string): number {
  const stripped = strip(text)
  if (!stripped) throw durationError(text, 'it is empty')
  if (stripped.startsWith('-')) throw durationError(text, 'it is negative')
  let total = 0
  if (PLAIN_NUMBER_RE.test(stripped)) total = Number(stripped)
  else {
    let position = 0
    let lastUnit = -1
    while (position < stripped.length) {
      DURATION_PART_RE.lastIndex = position
      const match = DURATION_PART_RE.exec(stripped)
      if (!match) throw durationError(text, `cannot read ${repr(stripped.slice(position))}`)
      const unit = match[2].toLowerCase()
      if (!DURATION_UNITS.has(unit)) throw durationError(text, `unknown unit ${repr(match[2])}`)
      const rank = DURATION_ORDER.indexOf(unit)
      if (rank <= lastUnit) throw durationError(text, `unit ${repr(match[2])} is repeated or out of order`)
      lastUnit = rank
      total += Number(match[1]) * (DURATION_UNITS.get(unit) as number)
      position = DURATION_PART_RE.lastIndex
    }
  }
  if (!(total > 0)) throw durationError(text, 'it must be greater than zero')
  return total
}
