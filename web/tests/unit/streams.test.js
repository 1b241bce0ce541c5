import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { EventSocket, eventsUrl } from '../../src/lib/events'
import { TerminalSession } from '../../src/lib/terminal'
import { ReconnectingTerminal, retryDelay } from '../../src/lib/terminalReconnect'
import { INITIAL_WINDOW, SUBPROTOCOL, T, decode, encode, u32Frame } from '../../src/lib/frames'

class FakeSocket {
  static all = []
  constructor(url, protocol) {
    Object.assign(this, { url, protocol, sent: [], readyState: 0 })
    FakeSocket.all.push(this)
  }
  open() {
    this.readyState = 1
    this.onopen && this.onopen()
  }
  receive(data) {
    this.onmessage({ data })
  }
  send(data) {
    this.sent.push(data)
  }
  close(code = 1000, reason = '') {
    if (this.readyState === 3) return
    this.readyState = 3
    this.onclose && this.onclose({ code, reason })
  }
}

beforeEach(() => {
  FakeSocket.all = []
})
afterEach(() => vi.useRealTimers())

describe('events socket', () => {
  it('builds its URL with the token and the last seq', () => {
    const loc = { protocol: 'https:', host: 'h:1' }
    expect(eventsUrl(loc, 't k', 0)).toBe('wss://h:1/api/v1/events?token=t+k')
    expect(eventsUrl(loc, 't', 17)).toBe('wss://h:1/api/v1/events?token=t&after=17')
  })

  it('reconnects after the last seq it saw and asks for a reload', () => {
    vi.useFakeTimers()
    const events = []
    const onReconnect = vi.fn()
    const statuses = []
    const s = new EventSocket({
      url: (after) => `ws://x/events?after=${after}`,
      onEvent: (e) => events.push(e),
      onStatus: (st) => statuses.push(st),
      onReconnect,
      WebSocketImpl: FakeSocket,
      delays: [100],
    })
    s.start()
    const first = FakeSocket.all[0]
    first.open()
    first.receive(JSON.stringify({ seq: 0, type: 'hello' }))
    first.receive(JSON.stringify({ seq: 5, type: 'task', task: { id: '1' } }))
    first.receive('not json')
    expect(events.map((e) => e.seq)).toEqual([0, 5])
    first.close(1013)
    expect(statuses.at(-1)).toBe('offline')
    vi.advanceTimersByTime(100)
    const second = FakeSocket.all[1]
    expect(second.url).toBe('ws://x/events?after=5')
    expect(onReconnect).not.toHaveBeenCalled()
    second.open()
    expect(onReconnect).toHaveBeenCalledTimes(1)
    expect(statuses.at(-1)).toBe('live')
    s.stop()
    vi.advanceTimersByTime(1000)
    expect(FakeSocket.all).toHaveLength(2)
  })

  it('reports a connection refused before it opened', () => {
    vi.useFakeTimers()
    const onRefused = vi.fn()
    const s = new EventSocket({ url: () => 'ws://x', onEvent: () => {}, onRefused, WebSocketImpl: FakeSocket, delays: [50] })
    s.start()
    FakeSocket.all[0].close(1006)
    expect(onRefused).toHaveBeenCalledTimes(1)
    s.stop()
  })
})

describe('terminal session', () => {
  function session(extra = {}) {
    const out = []
    const ends = []
    const t = new TerminalSession({
      url: 'ws://h/api/v1/tasks/1/terminal?token=t',
      rows: 30,
      cols: 100,
      onData: (b) => out.push(new TextDecoder().decode(b)),
      onEnd: (e) => ends.push(e),
      WebSocketImpl: FakeSocket,
      ...extra,
    }).connect()
    const ws = FakeSocket.all.at(-1)
    ws.open()
    return { t, ws, out, ends }
  }
  const sent = (ws) => ws.sent.map((m) => decode(m))

  it('speaks the stream protocol: READY, OPEN with the size, DATA both ways, RESIZE', () => {
    const { t, ws, out } = session()
    expect(ws.protocol).toBe(SUBPROTOCOL)
    t.write('early')
    expect(ws.sent).toHaveLength(0) // nothing before READY
    ws.receive(encode(T.READY, 0).buffer)
    const [open, data] = sent(ws)
    expect(open.type).toBe(T.OPEN)
    expect(open.stream).toBe(1)
    expect(JSON.parse(new TextDecoder().decode(open.payload))).toMatchObject({ rows: 30, cols: 100 })
    expect(data.type).toBe(T.DATA)
    expect(new TextDecoder().decode(data.payload)).toBe('early')
    ws.receive(encode(T.DATA, 1, new TextEncoder().encode('42\r\n')).buffer)
    expect(out).toEqual(['42\r\n'])
    t.resize(40, 120)
    t.resize(40, 120) // the same size again: nothing sent
    const resizes = sent(ws).filter((f) => f.type === T.RESIZE)
    expect(resizes).toHaveLength(1)
    expect([...resizes[0].payload]).toEqual([0, 40, 0, 120])
  })

  it('grants window as output is read and holds input beyond the peer window', () => {
    const { t, ws } = session()
    ws.receive(encode(T.READY, 0).buffer)
    ws.sent = []
    ws.receive(encode(T.DATA, 1, new Uint8Array(INITIAL_WINDOW / 4)).buffer)
    const grant = sent(ws).find((f) => f.type === T.WINDOW)
    expect(grant && new DataView(grant.payload.buffer, grant.payload.byteOffset).getUint32(0)).toBe(INITIAL_WINDOW / 4)
    ws.sent = []
    t.write(new Uint8Array(INITIAL_WINDOW + 10))
    const total = () => sent(ws).filter((f) => f.type === T.DATA).reduce((n, f) => n + f.payload.length, 0)
    expect(total()).toBe(INITIAL_WINDOW)
    ws.receive(u32Frame(T.WINDOW, 1, 100).buffer)
    expect(total()).toBe(INITIAL_WINDOW + 10)
  })

  it('ends with the exit code when the remote process exits', () => {
    const { ws, ends } = session()
    ws.receive(encode(T.READY, 0).buffer)
    ws.receive(u32Frame(T.EXIT, 1, 3).buffer)
    ws.receive(encode(T.CLOSE, 1).buffer)
    expect(ends).toEqual([{ code: 1000, reason: '', exitCode: 3, error: false, byUser: false }])
    expect(sent(ws).at(-1).type).toBe(T.CLOSE)
  })

  it('ends with the host reason when the session is refused', () => {
    const { ws, ends } = session()
    ws.close(4409, 'task 1 is completed (exit code 0) and no longer runs')
    expect(ends[0]).toMatchObject({ code: 4409, exitCode: null })
    expect(ends[0].reason).toContain('no longer runs')
  })

  it('ends with error on an ERROR frame, byUser after close, code 1006 when dropped', () => {
    const a = session()
    a.ws.receive(encode(T.READY, 0).buffer)
    a.ws.receive(encode(T.ERROR, 1, new TextEncoder().encode('docker exec failed')).buffer)
    expect(a.ends).toEqual([{ code: 1000, reason: 'docker exec failed', exitCode: null, error: true, byUser: false }])
    const b = session()
    b.t.close()
    expect(b.ends[0]).toMatchObject({ byUser: true, error: false })
    const c = session()
    c.t.drop()
    expect(c.ends).toEqual([{ code: 1006, reason: 'connection dropped', exitCode: null, error: false, byUser: false }])
    expect(c.ws.readyState).toBe(3)
  })
})

describe('terminal reconnects', () => {
  const lost = { code: 1006, reason: '', exitCode: null, error: false, byUser: false }

  it('retries a lost connection with a capped, growing delay, a bounded number of times', () => {
    expect([1, 2, 3, 4, 5, 6, 10].map((n) => retryDelay(lost, n))).toEqual([500, 1000, 2000, 4000, 5000, 5000, 5000])
    expect(retryDelay(lost, 11)).toBeNull()
    for (const code of [1001, 1011, 1012, 4429, 4502, 4503]) expect(retryDelay({ ...lost, code }, 1)).toBe(500)
    expect(retryDelay(lost, 3, [10, 20], 3)).toBe(20)
    expect(retryDelay(lost, 4, [10, 20], 3)).toBeNull()
  })

  it('does not retry an ended session: exit, ERROR, refusals, the user leaving', () => {
    expect(retryDelay({ ...lost, code: 1000, exitCode: 0 }, 1)).toBeNull()
    expect(retryDelay({ ...lost, exitCode: 130 }, 1)).toBeNull() // EXIT seen, then the socket dropped
    expect(retryDelay({ ...lost, code: 1000, error: true }, 1)).toBeNull()
    expect(retryDelay({ ...lost, byUser: true }, 1)).toBeNull()
    for (const code of [1000, 1002, 4401, 4403, 4404, 4409, 4410]) expect(retryDelay({ ...lost, code }, 1)).toBeNull()
  })

  function reconnecting(extra = {}) {
    const statuses = []
    const out = []
    const rt = new ReconnectingTerminal({
      url: 'ws://h/api/v1/tasks/1/terminal?token=t',
      onData: (b) => out.push(new TextDecoder().decode(b)),
      onStatus: (s) => statuses.push(s),
      WebSocketImpl: FakeSocket,
      ...extra,
    }).start()
    const ready = () => {
      const ws = FakeSocket.all.at(-1)
      ws.open()
      ws.receive(encode(T.READY, 0).buffer)
      return ws
    }
    return { rt, statuses, out, ready }
  }

  it('opens a new session after a lost connection, at the size the terminal has now', () => {
    vi.useFakeTimers()
    const { rt, statuses, out, ready } = reconnecting()
    ready()
    expect(statuses).toEqual([{ state: 'connected', reconnected: false }])
    rt.drop()
    expect(statuses.at(-1)).toMatchObject({ state: 'reconnecting', attempt: 1, end: { code: 1006 } })
    rt.resize(50, 132)
    vi.advanceTimersByTime(499)
    expect(FakeSocket.all).toHaveLength(1)
    vi.advanceTimersByTime(1)
    expect(FakeSocket.all).toHaveLength(2)
    FakeSocket.all[1].close(1006) // the host is not back yet
    expect(statuses.at(-1)).toMatchObject({ state: 'reconnecting', attempt: 2 })
    vi.advanceTimersByTime(1000)
    const ws = ready()
    expect(ws.url).toBe('ws://h/api/v1/tasks/1/terminal?token=t')
    expect(statuses.at(-1)).toEqual({ state: 'connected', reconnected: true })
    const open = decode(ws.sent[0])
    expect(JSON.parse(new TextDecoder().decode(open.payload))).toMatchObject({ rows: 50, cols: 132 })
    rt.write('ls\r')
    expect(decode(ws.sent[1]).type).toBe(T.DATA)
    ws.receive(encode(T.DATA, 1, new TextEncoder().encode('$ ')).buffer)
    expect(out).toEqual(['$ '])
    rt.drop() // counted from 1 again after a READY
    expect(statuses.at(-1)).toMatchObject({ state: 'reconnecting', attempt: 1 })
    rt.close()
  })

  it('ends when the host says the task no longer runs', () => {
    vi.useFakeTimers()
    const { rt, statuses, ready } = reconnecting()
    ready()
    rt.drop()
    vi.advanceTimersByTime(500)
    FakeSocket.all[1].close(4409, 'task 1 is completed (exit code 0) and no longer runs')
    expect(statuses.at(-1)).toMatchObject({ state: 'ended', retries: 1, end: { code: 4409 } })
    expect(statuses.at(-1).end.reason).toContain('no longer runs')
    vi.advanceTimersByTime(60_000)
    expect(FakeSocket.all).toHaveLength(2)
  })

  it('gives up after the last attempt', () => {
    vi.useFakeTimers()
    const { statuses, ready } = reconnecting({ delays: [10], max: 3 })
    ready()
    FakeSocket.all[0].close(1006)
    for (let n = 1; n <= 3; n++) {
      vi.advanceTimersByTime(10)
      FakeSocket.all.at(-1).close(1006)
    }
    expect(FakeSocket.all).toHaveLength(4)
    expect(statuses.map((s) => s.attempt || s.state)).toEqual(['connected', 1, 2, 3, 'ended'])
    expect(statuses.at(-1)).toMatchObject({ retries: 3, end: { code: 1006 } })
  })

  it('stops at an exit, and when the user leaves while it waits', () => {
    vi.useFakeTimers()
    const a = reconnecting()
    const ws = a.ready()
    ws.receive(u32Frame(T.EXIT, 1, 0).buffer)
    ws.close(1006)
    expect(a.statuses.at(-1)).toMatchObject({ state: 'ended', retries: 0, end: { exitCode: 0 } })
    const b = reconnecting()
    b.ready()
    b.rt.drop()
    b.rt.close()
    vi.advanceTimersByTime(60_000)
    expect(FakeSocket.all).toHaveLength(2)
    expect(b.statuses.at(-1).state).toBe('reconnecting')
  })
})
