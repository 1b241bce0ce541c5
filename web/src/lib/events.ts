// The host's event stream: one WebSocket per tab, reconnected with a growing delay.
// After a reconnect the caller reloads what it shows (events may have been missed); a
// host that replays passes `after=<last seq>` on, and a "reset" event says: reload.

import type { ClusterEvent } from '../types'

export type SocketStatus = 'connecting' | 'live' | 'offline'

export function eventsUrl(location: Pick<Location, 'protocol' | 'host'>, token: string, after?: number): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:'
  const q = new URLSearchParams({ token })
  if (after) q.set('after', String(after))
  return `${scheme}//${location.host}/api/v1/events?${q}`
}

export interface EventSocketOptions {
  /** The URL to connect to, given the last event's seq (0: none yet). */
  url: (after: number) => string
  onEvent: (event: ClusterEvent) => void
  onStatus?: (status: SocketStatus) => void
  onReconnect?: () => void
  onRefused?: () => void
  WebSocketImpl?: typeof WebSocket
  delays?: number[]
}

export class EventSocket {
  /**
   * onEvent(event), onStatus('connecting'|'live'|'offline'), onReconnect() after a
   * connection that is not the first, onRefused() when a connection closes before opening
   * (the caller checks its token).
   */
  url: (after: number) => string
  onEvent: (event: ClusterEvent) => void
  onStatus: (status: SocketStatus) => void
  onReconnect: () => void
  onRefused: () => void
  WS: typeof WebSocket
  delays: number[]
  lastSeq: number
  attempt: number
  connections: number
  ws: WebSocket | null
  timer: ReturnType<typeof setTimeout> | null
  stopped: boolean

  constructor({ url, onEvent, onStatus, onReconnect, onRefused, WebSocketImpl, delays }: EventSocketOptions) {
    this.url = url
    this.onEvent = onEvent
    this.onStatus = onStatus || (() => {})
    this.onReconnect = onReconnect || (() => {})
    this.onRefused = onRefused || (() => {})
    this.WS = WebSocketImpl || globalThis.WebSocket
    this.delays = delays || [250, 500, 1000, 2000, 5000]
    this.lastSeq = 0
    this.attempt = 0
    this.connections = 0
    this.ws = null
    this.timer = null
    this.stopped = false
  }

  start(): void {
    this.stopped = false
    this._connect()
  }

  stop(): void {
    this.stopped = true
    clearTimeout(this.timer ?? undefined)
    if (this.ws) {
      this.ws.onclose = null
      this.ws.close()
      this.ws = null
    }
    this.onStatus('offline')
  }

  _connect(): void {
    this.onStatus('connecting')
    const ws = new this.WS(this.url(this.lastSeq))
    this.ws = ws
    let opened = false
    ws.onopen = () => {
      opened = true
      this.attempt = 0
      this.connections += 1
      this.onStatus('live')
      if (this.connections > 1) this.onReconnect()
    }
    ws.onmessage = (message) => {
      let event: ClusterEvent
      try {
        event = JSON.parse(message.data)
      } catch {
        return
      }
      if (typeof event.seq === 'number' && event.seq > this.lastSeq) this.lastSeq = event.seq
      this.onEvent(event)
    }
    ws.onclose = () => {
      this.ws = null
      if (this.stopped) return
      this.onStatus('offline')
      if (!opened) this.onRefused()
      const delay = this.delays[Math.min(this.attempt, this.delays.length - 1)]
      this.attempt += 1
      this.timer = setTimeout(() => this._connect(), delay)
    }
  }
}
