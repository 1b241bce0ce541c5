import { beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { flushPromises, mount } from '@vue/test-utils'
import { useCluster } from '../../src/stores/cluster'
import { useSession } from '../../src/stores/session'
import EnvironmentsView from '../../src/views/EnvironmentsView.vue'

beforeEach(() => {
  setActivePinia(createPinia())
  localStorage.clear()
})

function page(workspaces = []) {
  const session = useSession()
  session.role = 'admin'
  const host = { workspaces }
  const api = {
    get: vi.fn(async (path) => (path === '/environments' ? host.workspaces : [])),
    post: vi.fn(async () => ({})),
  }
  session._api = api
  const w = mount(EnvironmentsView, { global: { stubs: { RouterLink: true } } })
  const reads = () => api.get.mock.calls.filter(([p]) => p === '/environments').length
  return { w, api, reads, host }
}

describe('environments page', () => {
  it('reads workspaces on opening, on each resync of the event stream and on refresh', async () => {
    const { w, reads, host } = page()
    await flushPromises()
    expect(reads()).toBe(1)
    expect(w.find('[data-ws=py]').exists()).toBe(false)
    host.workspaces = [{ name: 'py', state: 'stopped', image: 'img', shells: 0 }] // made elsewhere
    const cluster = useCluster()
    vi.spyOn(cluster, 'reload').mockResolvedValue()
    cluster.apply({ seq: 0, type: 'hello' }) // the stream reconnected: something may have changed
    await flushPromises()
    expect(reads()).toBe(2)
    expect(w.find('[data-ws=py] [data-test=ws-state]').text()).toBe('stopped')
    cluster.apply({ seq: 3, type: 'task', task: { id: '1', state: 'running' } })
    await flushPromises()
    expect(reads()).toBe(2) // task events say nothing about workspaces
    await w.find('[data-test=env-refresh]').trigger('click')
    await flushPromises()
    expect(reads()).toBe(3)
  })

  it('reads them again after an action and keeps the action error', async () => {
    const { w, api, reads } = page([{ name: 'py', state: 'stopped', image: 'img', shells: 0 }])
    await flushPromises()
    api.post.mockRejectedValueOnce(new Error('workspace py is running'))
    await w.find('[data-ws=py] button').trigger('click') // start
    await flushPromises()
    expect(api.post).toHaveBeenCalledWith('/environments/py/start')
    expect(reads()).toBe(2)
    expect(w.find('[data-test=env-error]').text()).toBe('workspace py is running')
  })
})
