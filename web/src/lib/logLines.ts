// The log viewer's pure parts: the lines a filter keeps, output held back while paused,
// and the name a downloaded log gets.

/** The lines of `text` that contain `filter` in any case (all of `text` without one). */
export function filterLines(text: string, filter?: string | null): string {
  const needle = (filter || '').toLowerCase()
  if (!needle) return text
  return text
    .split('\n')
    .filter((line) => line.toLowerCase().includes(needle))
    .join('\n')
}

/**
 * A log's text as it arrives, the last `keep` characters of it. While paused, new
 * output is held back: `shown` stays as it was until `resume()` adds what was held.
 */
export class LogBuffer {
  keep: number
  shown: string
  held: string
  paused: boolean

  constructor(keep: number) {
    this.keep = keep
    this.shown = ''
    this.held = ''
    this.paused = false
  }

  add(chunk: string): void {
    if (!chunk) return
    if (this.paused) this.held = (this.held + chunk).slice(-this.keep)
    else this.shown = (this.shown + chunk).slice(-this.keep)
  }

  pause() {
    this.paused = true
  }

  resume() {
    this.paused = false
    this.shown = (this.shown + this.held).slice(-this.keep)
    this.held = ''
  }

  /** Everything kept, held output included: what a download saves. */
  all(): string {
    return (this.shown + this.held).slice(-this.keep)
  }

  clear() {
    this.shown = ''
    this.held = ''
  }
}

/** `task-<id>-<stream>.log` (or `batch-…` for a batch's logs). */
export function logFileName(kind: string, id: string, stream: string): string {
  return `${kind}-${id}-${stream}.log`
}
