// The host's REST API: JSON in and out, the token as a Bearer header, errors as ApiError.

export const API = '/api/v1'

export class ApiError extends Error {
  constructor(status, detail, errors = []) {
    super(detail || `HTTP ${status}`)
    this.status = status
    this.detail = detail || `HTTP ${status}`
    this.errors = errors
  }

  /** Messages by form field: the last non-"body" part of each error's location. */
  fieldErrors() {
    const out = {}
    for (const e of this.errors || []) {
      const loc = (e.loc || []).filter((p) => p !== 'body')
      const key = loc.length ? String(loc[0]) : '_'
      out[key] = out[key] ? `${out[key]}; ${e.msg}` : e.msg
    }
    return out
  }
}

export function query(params) {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === '') continue
    if (Array.isArray(v)) v.forEach((item) => q.append(k, item))
    else q.append(k, String(v))
  }
  const s = q.toString()
  return s ? `?${s}` : ''
}

/**
 * A client bound to a token source. `onUnauthorized` runs on any 401 (the token is
 * no longer good: the app goes back to its login page).
 */
export function createApi({ token, onUnauthorized = () => {}, fetchImpl } = {}) {
  const doFetch = fetchImpl || ((...a) => globalThis.fetch(...a))

  async function raw(method, path, { params, body, signal, headers } = {}) {
    const h = { ...(headers || {}) }
    const t = token()
    if (t) h.Authorization = `Bearer ${t}`
    if (body !== undefined) h['Content-Type'] = 'application/json'
    let response
    try {
      response = await doFetch(API + path + query(params), {
        method,
        headers: h,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      })
    } catch (exc) {
      if (exc && exc.name === 'AbortError') throw exc
      throw new ApiError(0, `the host cannot be reached (${exc && exc.message})`)
    }
    if (!response.ok) {
      let detail = `HTTP ${response.status}`
      let errors = []
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

  async function json(method, path, options) {
    const response = await raw(method, path, options)
    if (response.status === 204) return null
    const text = await response.text()
    return text ? JSON.parse(text) : null
  }

  return {
    raw,
    get: (path, params, options = {}) => json('GET', path, { ...options, params }),
    post: (path, body, params) => json('POST', path, { body, params }),
    del: (path, params) => json('DELETE', path, { params }),
    /** GET that answers null on 404 (an endpoint this host does not have yet). */
    async optional(path, params) {
      try {
        return await json('GET', path, { params })
      } catch (exc) {
        if (exc instanceof ApiError && (exc.status === 404 || exc.status === 405)) return null
        throw exc
      }
    },
  }
}
