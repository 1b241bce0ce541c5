// A terminal over a stream session (the WebSocket `kawa connect` uses): wait for READY,
// open stream 1 with the terminal's size, then keystrokes go out as DATA and output
// comes back as DATA, with WINDOW grants both ways, RESIZE on size changes, EXIT at the end.
import {
  INITIAL_WINDOW, SUBPROTOCOL, T, closeFrame, dataFrame, decode, openFrame, readI32, readU32,
  resizeFrame, windowFrame, type Frame,
} from './frames'

const STREAM = 1

export function terminalUrl(location: Pick<Location, 'protocol' | 'host'>, path: string, token: string): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:'
  return `${scheme}//${location.host}/api/v1/${path}/terminal?${new URLSearchParams({ token })}`
}

/** How a session ended: what onEnd gets. */
export interface EndInfo {
  /** The WebSocket's close code (1000 after the host's ERROR or CLOSE). */
  code: number
  reason: string
  /** The host sent ERROR (`reason` is its text). */
  error: boolean
  /** The command's exit code; null without EXIT. */
  exitCode: number | null
  /** close() was called. */
  byUser: boolean
}

export interface TerminalOptions {
  url: string
  rows?: number
  cols?: number
  term?: string
  onData?: (bytes: Uint8Array) => void
  onReady?: () => void
  onEnd?: (end: EndInfo) => void
  WebSocketImpl?: typeof WebSocket
}

export class TerminalSession {
  url: string
  rows: number
  cols: number
  term: string
  onData: (bytes: Uint8Array) => void
  onReady: () => void
  onEnd: (end: EndInfo) => void
  WS: typeof WebSocket
  ws?: WebSocket
  sendWindow: number
  unacked: number
  pending: Uint8Array[]
  opened: boolean
  exitCode: number | null
  ended: boolean
  closedByUser: boolean

  constructor({ url, rows = 24, cols = 80, term = 'xterm-256color', onData, onReady, onEnd, WebSocketImpl }: TerminalOptions) {
    this.url = url
    this.rows = rows
    this.cols = cols
    this.term = term
    this.onData = onData || (() => {})
    this.onReady = onReady || (() => {})
    this.onEnd = onEnd || (() => {})
    this.WS = WebSocketImpl || globalThis.WebSocket
    this.sendWindow = INITIAL_WINDOW
    this.unacked = 0
    this.pending = []
    this.opened = false
    this.exitCode = null
    this.ended = false
    this.closedByUser = false
  }

  connect(): this {
    const ws = new this.WS(this.url, SUBPROTOCOL)
    ws.binaryType = 'arraybuffer'
    this.ws = ws
    ws.onmessage = (m) => this._frame(m.data)
    ws.onclose = (e) => this._end({ code: e.code, reason: e.reason || '' })
    return this
  }

  _send(bytes: Uint8Array): void {
    if (this.ws && this.ws.readyState === 1) this.ws.send(bytes)
  }

  _frame(data: ArrayBuffer | string): void {
    if (typeof data === 'string') return
    let f: Frame
    try {
      f = decode(data)
    } catch {
      return
    }
    if (f.type === T.READY) {
      this._send(openFrame(STREAM, { rows: this.rows, cols: this.cols, term: this.term }))
      this.opened = true
      this._flush() // keys typed while the session was connecting
      this.onReady()
      return
    }
    if (f.stream !== STREAM) return
    switch (f.type) {
      case T.DATA:
        this.onData(f.payload)
        this.unacked += f.payload.length
        if (this.unacked >= INITIAL_WINDOW / 4) {
          this._send(windowFrame(STREAM, this.unacked))
          this.unacked = 0
        }
        break
      case T.WINDOW:
        this.sendWindow += readU32(f.payload)
        this._flush()
        break
      case T.EXIT:
        this.exitCode = readI32(f.payload)
        break
      case T.ERROR:
        this._end({ code: 1000, reason: new TextDecoder().decode(f.payload), error: true })
        break
      case T.CLOSE:
        this._send(closeFrame(STREAM))
        this._end({ code: 1000, reason: '' })
        break
      default:
        break
    }
  }

  /** Send keystrokes (a string or bytes), held back while the peer's window is spent. */
  write(data: string | Uint8Array): void {
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data
    this.pending.push(bytes)
    this._flush()
  }

  _flush(): void {
    while (this.opened && this.pending.length && this.sendWindow > 0) {
      let chunk = this.pending[0]
      if (chunk.length > this.sendWindow) {
        this.pending[0] = chunk.subarray(this.sendWindow)
        chunk = chunk.subarray(0, this.sendWindow)
      } else {
        this.pending.shift()
      }
      this.sendWindow -= chunk.length
      this._send(dataFrame(STREAM, chunk))
    }
  }

  resize(rows: number, cols: number): void {
    if (rows < 1 || cols < 1 || (rows === this.rows && cols === this.cols)) return
    this.rows = rows
    this.cols = cols
    if (this.opened) this._send(resizeFrame(STREAM, rows, cols))
  }

  /** onEnd gets the close code and reason, the exit code (null without EXIT), `error`
   * (the host sent ERROR) and `byUser` (close() was called). */
  _end(info: { code: number; reason: string; error?: boolean }): void {
    if (this.ended) return
    this.ended = true
    this.onEnd({ error: false, ...info, exitCode: this.exitCode, byUser: this.closedByUser })
    if (this.ws && this.ws.readyState <= 1) this.ws.close()
  }

  close(): void {
    this.closedByUser = true
    if (this.ws && this.ws.readyState <= 1) {
      this._send(closeFrame(STREAM))
      this.ws.close()
    }
  }

  /** Lose the connection as a network failure would (close code 1006), for tests. */
  drop(): void {
    const ws = this.ws
    if (!ws) return
    ws.onmessage = null
    ws.onclose = null
    if (ws.readyState <= 1) ws.close()
    this._end({ code: 1006, reason: 'connection dropped' })
  }
}
