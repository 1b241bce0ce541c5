// Who is logged in: the API token (kept in localStorage), the role, the host's info.
import { defineStore } from 'pinia'
import { ApiError, createApi } from '../lib/api'

const KEY = 'kawa.token'

export const useSession = defineStore('session', {
  state: () => ({
    token: localStorage.getItem(KEY) || '',
    role: null,
    user: null,
    info: null,
    expired: '',
  }),
  getters: {
    loggedIn: (s) => Boolean(s.token && s.role),
    canAct: (s) => s.role === 'user' || s.role === 'admin',
    isAdmin: (s) => s.role === 'admin',
  },
  actions: {
    api() {
      if (!this._api) {
        this._api = createApi({ token: () => this.token, onUnauthorized: (d) => this.logout(d) })
      }
      return this._api
    },
    /** Check a token with the host and learn its role; throws ApiError if refused. */
    async login(token) {
      this.token = token.trim()
      try {
        await this.identify()
      } catch (exc) {
        this.token = ''
        this.role = null
        throw exc
      }
      localStorage.setItem(KEY, this.token)
      this.expired = ''
    },
    async identify() {
      const api = this.api()
      const me = await api.optional('/whoami')
      if (me) {
        this.user = me.name
        this.role = me.role
      } else {
        this.user = null
        this.role = await inferRole(api)
      }
      this.info = await api.optional('/info').catch(() => null)
    },
    logout(reason = '') {
      localStorage.removeItem(KEY)
      this.token = ''
      this.role = null
      this.user = null
      this.expired = reason
    },
  },
})

/**
 * The role, for a host without /whoami: the audit log is for admins only, and downloading
 * an environment is refused to viewers before the name is looked at (a name that cannot
 * exist gets 400 for everyone else).
 */
export async function inferRole(api) {
  try {
    await api.get('/audit', { limit: 1 })
    return 'admin'
  } catch (exc) {
    if (!(exc instanceof ApiError) || exc.status === 401) throw exc
  }
  try {
    await api.get('/environments/-/tarball')
    return 'user'
  } catch (exc) {
    if (!(exc instanceof ApiError) || exc.status === 401) throw exc
    return exc.status === 403 ? 'viewer' : 'user'
  }
}
