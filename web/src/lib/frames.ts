// The stream-session frame format (kawa.streams.v1), as `kawa connect` speaks it: every
// binary WebSocket message is one frame: type u8, flags u8 (0), stream id u32 (big
// endian), payload.

export const SUBPROTOCOL = 'kawa.streams.v1'
export const HEADER = 6
export const INITIAL_WINDOW = 256 * 1024
export const T = { OPEN: 1, DATA: 2, EOF: 3, CLOSE: 4, ERROR: 5, WINDOW: 6, RESIZE: 7, EXIT: 8, READY: 9 } as const

export interface Frame {
  type: number
  stream: number
  payload: Uint8Array
}

export function encode(type: number, stream: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(HEADER + payload.length)
  const view = new DataView(out.buffer)
  view.setUint8(0, type)
  view.setUint8(1, 0)
  view.setUint32(2, stream)
  out.set(payload, HEADER)
  return out
}

export function decode(buffer: ArrayBuffer | Uint8Array): Frame {
  const bytes = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer)
  if (bytes.length < HEADER) throw new Error(`frame of ${bytes.length} bytes is too short`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  return { type: view.getUint8(0), stream: view.getUint32(2), payload: bytes.subarray(HEADER) }
}

const text = new TextEncoder()
export const openFrame = (stream: number, params: unknown): Uint8Array => encode(T.OPEN, stream, text.encode(JSON.stringify(params)))
export const dataFrame = (stream: number, bytes: Uint8Array): Uint8Array => encode(T.DATA, stream, bytes)
export const closeFrame = (stream: number): Uint8Array => encode(T.CLOSE, stream)

export function u32Frame(type: number, stream: number, value: number): Uint8Array {
  const p = new Uint8Array(4)
  new DataView(p.buffer).setUint32(0, value)
  return encode(type, stream, p)
}
export const windowFrame = (stream: number, grant: number): Uint8Array => u32Frame(T.WINDOW, stream, grant)

export function resizeFrame(stream: number, rows: number, cols: number): Uint8Array {
  const p = new Uint8Array(4)
  const v = new DataView(p.buffer)
  v.setUint16(0, rows)
  v.setUint16(2, cols)
  return encode(T.RESIZE, stream, p)
}

export const readU32 = (payload: Uint8Array): number => new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0)
export const readI32 = (payload: Uint8Array): number => new DataView(payload.buffer, payload.byteOffset, 4).getInt32(0)
