// A web terminal that outlives a network blip: when its connection is lost (rather than
// ended: the shell exited, the host sent ERROR or refused, the user left), it opens a new
// stream session after a growing delay, a bounded number of times. Each new session
// runs a new shell.
import { type EndInfo, type TerminalOptions, TerminalSession } from './terminal'

export const RETRY_DELAYS = [500, 1000, 2000, 4000, 5000]
export const MAX_RETRIES = 10

// Close codes of a lost connection: none came (1005, 1006), the host went away, restarts
// or asks to try later (1001, 1012, 1013), a gateway in between failed (1014), the
// runner's leg broke (1011) or the runner could not be reached (4502), the host is too
// busy or not serving yet (4429, 4503, 4504). Any
// other code ends the terminal: among them 4409 and 4410 (the task no longer runs), 4404
// (no such task) and 4401 (the token is not taken).
const LOST = new Set([1001, 1005, 1006, 1011, 1012, 1013, 1014, 4429, 4502, 4503, 4504])

// What a full-screen program may have left set (mouse reporting, the alternate screen,
// cursor key and other modes), undone before a new shell writes below the old text.
export const AFTER_RECONNECT = '\x1b[?1000;1002;1003;1006;1047l\x1b[!p\r\n'

/**
 * Milliseconds to wait before reconnect `attempt` (1, 2, …) after a session ended with
 * `end` (TerminalSession's onEnd), or null when the terminal is over.
 */
export function retryDelay(
  end: Pick<EndInfo, 'byUser' | 'error' | 'exitCode' | 'code'>,
  attempt: number,
  delays: number[] = RETRY_DELAYS,
  max: number = MAX_RETRIES,
): number | null {
  if (end.byUser || end.error || end.exitCode !== null) return null
  if (!LOST.has(end.code) || attempt > max) return null
  return delays[Math.min(attempt, delays.length) - 1]
}

/** What a reconnecting terminal reports (retries: reconnects tried since the last READY). */
export type TerminalStatus =
  | { state: 'connected'; reconnected: boolean }
  | { state: 'reconnecting'; attempt: number; end: EndInfo }
  | { state: 'ended'; end: EndInfo; retries: number }

export interface ReconnectingOptions extends Omit<TerminalOptions, 'onReady' | 'onEnd'> {
  onStatus?: (status: TerminalStatus) => void
  delays?: number[]
  max?: number
}

export class ReconnectingTerminal {
  options: Omit<TerminalOptions, 'onReady' | 'onEnd'>
  onStatus: (status: TerminalStatus) => void
  delays: number[]
  max: number
  session: TerminalSession | null
  timer: ReturnType<typeof setTimeout> | null
  attempt: number
  stopped: boolean

  /**
   * TerminalSession's options (url, rows, cols, onData, WebSocketImpl), and onStatus with
   * one of {state: 'connected', reconnected}, {state: 'reconnecting', attempt, end},
   * {state: 'ended', end, retries} (retries: reconnects tried since the last READY).
   */
  constructor({ onStatus, delays = RETRY_DELAYS, max = MAX_RETRIES, ...options }: ReconnectingOptions) {
    this.options = options
    this.onStatus = onStatus || (() => {})
    this.delays = delays
    this.max = max
    this.session = null
    this.timer = null
    this.attempt = 0
    this.stopped = true
  }

  start(): this {
    this.stopped = false
    this.attempt = 0
    this._open(false)
    return this
  }

  _open(again: boolean): void {
    this.session = new TerminalSession({
      ...this.options,
      onReady: () => {
        this.attempt = 0
        this.onStatus({ state: 'connected', reconnected: again })
      },
      onEnd: (end) => this._ended(end),
    }).connect()
  }

  _ended(end: EndInfo): void {
    if (this.stopped) return
    this.attempt += 1
    const delay = retryDelay(end, this.attempt, this.delays, this.max)
    if (delay === null) {
      this.stopped = true
      this.onStatus({ state: 'ended', end, retries: this.attempt - 1 })
      return
    }
    this.onStatus({ state: 'reconnecting', attempt: this.attempt, end })
    this.timer = setTimeout(() => {
      this.timer = null
      this._open(true)
    }, delay)
  }

  /** Keystrokes for the current session (held until it is ready); dropped between sessions. */
  write(data: string | Uint8Array): void {
    if (this.session && !this.session.ended) this.session.write(data)
  }

  resize(rows: number, cols: number): void {
    this.options.rows = rows
    this.options.cols = cols
    if (this.session) this.session.resize(rows, cols)
  }

  /** Lose the current connection as a network failure would (tests use it). */
  drop(): void {
    if (this.session) this.session.drop()
  }

  close(): void {
    this.stopped = true
    clearTimeout(this.timer ?? undefined)
    this.timer = null
    if (this.session) this.session.close()
  }
}
