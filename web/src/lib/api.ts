// The host's REST API: JSON in and out, the token as a Bearer header, errors as ApiError.
import type { ApiErrorItem } from '../types'

export const API = '/api/v1'

/** Query parameters: empty ones are left out, a list gives the key once per item. */
export type Params = Record<string, string | number | boolean | null | undefined | (string | number)[]>

export class ApiError extends Error {
  status: number
  detail: string
  errors: ApiErrorItem[]

  constructor(status: number, detail?: string, errors: ApiErrorItem[] = []) {
    super(detail || `HTTP ${status}`)
    this.status = status
    this.detail = detail || `HTTP ${status}`
    this.errors = errors
  }

  /** Messages by form field: the last non-"body" part of each error's location. */
  fieldErrors(): Record<string, string> {
    const out: Record<string, string> = {}
    for (const e of this.errors || []) {
      const loc = (e.loc || []).filter((p) => p !== 'body')
      const key = loc.length ? String(loc[0]) : '_'
      out[key] = out[key] ? `${out[key]}; ${e.msg}` : e.msg
    }
    return out
  }
}

export function query(params?: Params | null): string {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === '') continue
    if (Array.isArray(v)) v.forEach((item) => q.append(k, String(item)))
    else q.append(k, String(v))
  }
  const s = q.toString()
  return s ? `?${s}` : ''
}

/**
 * A client bound to a token source. `onUnauthorized` runs on any 401 (the token is
 * no longer good: the app goes back to its login page).
 */
export interface ApiOptions {
  token: () => string
  onUnauthorized?: (detail: string) => void
  fetchImpl?: typeof fetch
}

export interface RequestOptions {
  params?: Params
  body?: unknown
  signal?: AbortSignal
  headers?: Record<string, string>
}

export function createApi({ token, onUnauthorized = () => {}, fetchImpl }: ApiOptions) {
  const doFetch: typeof fetch = fetchImpl || ((...a) => globalThis.fetch(...a))

  async function raw(method: string, path: string, { params, body, signal, headers }: RequestOptions = {}): Promise<Response> {
    const h: Record<string, string> = { ...(headers || {}) }
    const t = token()
    if (t) h.Authorization = `Bearer ${t}`
    if (body !== undefined) h['Content-Type'] = 'application/json'
    let response: Response
    try {
      response = await doFetch(API + path + query(params), {
        method,
        headers: h,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      })
    } catch (exc) {
      const e = exc as Error | undefined
      if (e && e.name === 'AbortError') throw exc
      throw new ApiError(0, `the host cannot be reached (${e && e.message})`)
    }
    if (!response.ok) {
      let detail = `HTTP ${response.status}`
      let errors: ApiErrorItem[] = []
      try {
        const data = await response.json()
        if (data && typeof data.detail === 'string') detail = data.detail
        if (data && Array.isArray(data.errors)) errors = data.errors
      } catch {
        /* not JSON: keep the status line */
      }
      if (response.status === 401) onUnauthorized(detail)
      throw new ApiError(response.status, detail, errors)
    }
    return response
  }

  // The answer as the caller says the endpoint sends it (null for an empty one).
  async function json<T>(method: string, path: string, options?: RequestOptions): Promise<T> {
    const response = await raw(method, path, options)
    if (response.status === 204) return null as T
    const text = await response.text()
    return (text ? JSON.parse(text) : null) as T
  }

  return {
    raw,
    get: <T = unknown>(path: string, params?: Params, options: RequestOptions = {}) =>
      json<T>('GET', path, { ...options, params }),
    post: <T = unknown>(path: string, body?: unknown, params?: Params) => json<T>('POST', path, { body, params }),
    del: <T = unknown>(path: string, params?: Params) => json<T>('DELETE', path, { params }),
    /** GET that answers null on 404 (an endpoint this host does not have yet). */
    async optional<T = unknown>(path: string, params?: Params): Promise<T | null> {
      try {
        return await json<T>('GET', path, { params })
      } catch (exc) {
        if (exc instanceof ApiError && (exc.status === 404 || exc.status === 405)) return null
        throw exc
      }
    },
  }
}

export type Api = ReturnType<typeof createApi>
