import { beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { flushPromises, mount } from '@vue/test-utils'
import { createMemoryHistory, createRouter } from 'vue-router'
import { useCluster } from '../../src/stores/cluster'
import { useSession } from '../../src/stores/session'
import TasksView from '../../src/views/TasksView.vue'

const task = (id, owner, batch) => ({
  id, owner, batch_id: batch, state: 'completed', kind: 'command', name: null, node: 'n1',
  command: ['echo', id], created_at: new Date().toISOString(), exit_code: 0,
})

let api

async function open(query = {}) {
  const router = createRouter({
    history: createMemoryHistory(),
    routes: [{ path: '/tasks', component: TasksView }, { path: '/tasks/:id', component: TasksView }],
  })
  router.push({ path: '/tasks', query })
  await router.isReady()
  const w = mount(TasksView, { global: { plugins: [router] } })
  await flushPromises()
  return w
}

const ids = (w) => w.findAll('[data-task]').map((r) => r.attributes('data-task'))

beforeEach(() => {
  setActivePinia(createPinia())
  const cluster = useCluster()
  for (const t of [task('3', 'alice', '7'), task('2', 'bob', '7'), task('1', 'alice', '5')]) cluster.tasks[t.id] = t
  api = {
    get: vi.fn(async () => []),
    raw: vi.fn(async () => ({ body: { getReader: () => ({ read: async () => ({ done: true }) }) } })),
  }
  useSession()._api = api
})

describe('task list', () => {
  it('filters by owner and asks the host for older tasks of that owner', async () => {
    const w = await open({ owner: 'alice' })
    expect(ids(w)).toEqual(['3', '1'])
    await w.find('[data-test=filter-owner]').setValue('bob')
    expect(ids(w)).toEqual(['2'])
    await w.find('[data-test=load-older]').trigger('click')
    await flushPromises()
    expect(api.get).toHaveBeenCalledWith('/tasks', { before: '1', limit: 200, owner: 'bob' })
  })

  it('offers the batch logs only for a list filtered by a batch, and shows them merged', async () => {
    const w = await open()
    expect(w.find('[data-test=batch-logs]').exists()).toBe(false)
    await w.find('input[placeholder="batch id"]').setValue('7')
    expect(ids(w)).toEqual(['3', '2'])
    expect(w.find('[data-test=batch-logs-panel]').exists()).toBe(false)
    await w.find('[data-test=batch-logs]').trigger('click')
    await flushPromises()
    expect(w.find('[data-test=batch-logs-panel]').exists()).toBe(true)
    expect(api.raw).toHaveBeenCalledWith('GET', '/batches/7/logs', expect.objectContaining({ params: { stream: 'stdout' } }))
    await w.find('[data-test=batch-logs-panel] [data-test=stderr]').setValue(true)
    await flushPromises()
    expect(api.raw).toHaveBeenLastCalledWith('GET', '/batches/7/logs', expect.objectContaining({ params: { stream: 'stderr' } }))
    await w.find('[data-test=batch-logs]').trigger('click')
    expect(w.find('[data-test=batch-logs-panel]').exists()).toBe(false)
    await w.find('input[placeholder="batch id"]').setValue('7x')
    expect(w.find('[data-test=batch-logs]').exists()).toBe(false)
  })
})
