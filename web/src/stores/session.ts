// Who is logged in: the API token (kept in localStorage), the role, the host's info.
import { defineStore } from 'pinia'
import { type Api, ApiError, createApi } from '../lib/api'
import type { HostInfo, Role, WhoAmI } from '../types'

const KEY = 'kawa.token'

// Kept on the store but outside its state: the API client, made on first use (tests put
// a fake one there).
interface Held {
  _api?: Api
}

export const useSession = defineStore('session', {
  state: () => ({
    token: localStorage.getItem(KEY) || '',
    role: null as Role | null,
    user: null as string | null,
    info: null as HostInfo | null,
    expired: '',
  }),
  getters: {
    loggedIn: (s) => Boolean(s.token && s.role),
    canAct: (s) => s.role === 'user' || s.role === 'admin',
    isAdmin: (s) => s.role === 'admin',
  },
  actions: {
    api(): Api {
      const held = this as Held
      if (!held._api) {
        held._api = createApi({ token: () => this.token, onUnauthorized: (d) => this.logout(d) })
      }
      return held._api
    },
    /** Check a token with the host and learn its role; throws ApiError if refused. */
    async login(token: string): Promise<void> {
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
    async identify(): Promise<void> {
      const api = this.api()
      const me = await api.optional<WhoAmI>('/whoami')
      if (me) {
        this.user = me.name
        this.role = me.role
      } else {
        this.user = null
        this.role = await inferRole(api)
      }
      this.info = await api.optional<HostInfo>('/info').catch(() => null)
    },
    logout(reason = ''): void {
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
export async function inferRole(api: Pick<Api, 'get'>): Promise<Role> {
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
