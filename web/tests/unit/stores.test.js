import { beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { mount } from '@vue/test-utils'
import { ApiError } from '../../src/lib/api'
import { describe as describeEvent, useCluster } from '../../src/stores/cluster'
import { inferRole, useSession } from '../../src/stores/session'
import ConnectCard from '../../src/components/ConnectCard.vue'

beforeEach(() => {
  setActivePinia(createPinia())
  localStorage.clear()
})

const task = (id, state, extra = {}) => ({ id, state, name: null, node: 'n1', ...extra })

describe('cluster store', () => {
  it('applies task and node events and lists a line only when a state changes', () => {
    const c = useCluster()
    vi.spyOn(c, 'reload').mockResolvedValue()
    c.apply({ seq: 1, type: 'task', task: task('5', 'pending') })
    c.apply({ seq: 2, type: 'task', task: task('5', 'pending', { waiting_reason: 'no cores' }) })
    c.apply({ seq: 3, type: 'task', task: task('5', 'running') })
    c.apply({ seq: 4, type: 'node', node: { name: 'n1', status: 'online' } })
    c.apply({ seq: 5, type: 'node', node: { name: 'n1', status: 'online' } })
    c.apply({ seq: 0, type: 'hello' })
    expect(c.tasks['5'].state).toBe('running')
    expect(c.events.map((e) => e.text)).toEqual(['node n1 online', 'task 5 running on n1', 'task 5 pending on n1'])
  })
  it('lists tasks newest first by id', () => {
    const c = useCluster()
    for (const id of ['9', '10', '2', '386769687926538241', '386769687926538242']) c.putTask(task(id, 'running'))
    expect(c.taskList.map((t) => t.id)).toEqual(['386769687926538242', '386769687926538241', '10', '9', '2'])
  })
  it('leaves out events about tasks older than a full load holds', () => {
    const c = useCluster()
    c.floor = '100'
    c.putTask(task('100', 'pending'))
    c.apply({ seq: 1, type: 'task', task: task('99', 'pending', { waiting_reason: 'no cores' }) })
    c.apply({ seq: 2, type: 'task', task: task('100', 'killed') })
    c.apply({ seq: 3, type: 'task', task: task('101', 'pending') })
    expect(Object.keys(c.tasks).sort()).toEqual(['100', '101'])
    expect(c.tasks['100'].state).toBe('killed')
    c.floor = null
    c.apply({ seq: 4, type: 'task', task: task('7', 'pending') })
    expect(c.tasks['7'].state).toBe('pending')
  })
  it('reloads everything on a reset event and on each hello', () => {
    const c = useCluster()
    const reload = vi.spyOn(c, 'reload').mockResolvedValue()
    c.apply({ seq: 9, type: 'reset' })
    c.apply({ seq: 9, type: 'hello' })
    expect(reload).toHaveBeenCalledTimes(2)
    expect(c.resyncs).toBe(2) // for the pages that read more than nodes and tasks
    expect(describeEvent({ type: 'task', task: task('1', 'failed', { name: 'x' }) })).toBe('task 1 (x) failed on n1')
  })
})

describe('cluster store reloads', () => {
  // A host that answers each reload (a /nodes and a /tasks call) when the test says.
  function slowHost() {
    const calls = []
    useSession()._api = {
      get: vi.fn((path) => new Promise((resolve) => calls.push({ path, resolve }))),
    }
    return async (reload, nodes, tasks) => {
      const [n, t] = calls.slice(2 * reload, 2 * reload + 2)
      expect([n.path, t.path]).toEqual(['/nodes', '/tasks'])
      n.resolve(nodes)
      t.resolve(tasks)
      await new Promise((r) => setTimeout(r, 0))
    }
  }

  it('keeps a change that reached the tab after the reload began over its older answer', async () => {
    const c = useCluster()
    const answer = slowHost()
    const first = c.reload()
    c.apply({ seq: 1, type: 'task', task: task('5', 'paused') })
    c.apply({ seq: 2, type: 'node', node: { name: 'n1', status: 'draining' } })
    await answer(0, [{ name: 'n1', status: 'online' }, { name: 'n2', status: 'online' }],
      [task('5', 'running'), task('6', 'pending')])
    await first
    expect(c.tasks['5'].state).toBe('paused')
    expect(c.tasks['6'].state).toBe('pending')
    expect(c.nodes.n1.status).toBe('draining')
    expect(c.nodes.n2.status).toBe('online')
    // a reload begun after those changes answers with what it read
    const second = c.reload()
    await answer(1, [{ name: 'n1', status: 'online' }], [task('5', 'running')])
    await second
    expect(c.tasks['5'].state).toBe('running')
    expect(Object.keys(c.nodes)).toEqual(['n1'])
  })

  it('drops an answer that comes after the answer of a reload begun later', async () => {
    const c = useCluster()
    const answer = slowHost()
    const first = c.reload()
    const second = c.reload()
    await answer(1, [{ name: 'n1', status: 'online' }], [task('7', 'running')])
    await second
    await answer(0, [], [task('7', 'pending')])
    await first
    expect(c.tasks['7'].state).toBe('running')
    expect(c.nodes.n1.status).toBe('online')
  })

  it('drops the answer of an action when an event changed the task after it began', () => {
    const c = useCluster()
    c.putTask(task('5', 'running'))
    const since = c.mark()
    c.apply({ seq: 1, type: 'task', task: task('5', 'killed') }) // the event came first
    c.putTask(task('5', 'running', { desired: 'kill' }), since) // the answer, made before it
    c.unmark(since)
    expect(c.tasks['5'].state).toBe('killed')
    const again = c.mark()
    c.putTask(task('6', 'pending'), again) // nothing changed meanwhile: put
    c.putNode({ name: 'n1', status: 'draining' }, again)
    c.unmark(again)
    expect(c.tasks['6'].state).toBe('pending')
    expect(c.nodes.n1.status).toBe('draining')
  })

  it('keeps what an action under way needs through a reload', async () => {
    const c = useCluster()
    const answer = slowHost()
    const since = c.mark()
    c.apply({ seq: 1, type: 'task', task: task('5', 'paused') })
    const reload = c.reload()
    await answer(0, [], [task('5', 'paused')])
    await reload
    c.putTask(task('5', 'running', { desired: 'pause' }), since) // answered after the reload
    c.unmark(since)
    expect(c.tasks['5'].state).toBe('paused')
    expect(c.marks.open.size).toBe(0)
  })

  it('lets no reload under way fill the store after a logout', async () => {
    const c = useCluster()
    const answer = slowHost()
    const first = c.reload()
    c.disconnect()
    await answer(0, [{ name: 'n1', status: 'online' }], [task('7', 'running')])
    await first
    expect(c.tasks).toEqual({})
    expect(c.loaded).toBe(false)
  })
})

describe('session store', () => {
  it('keeps the token only after the host accepted it, and forgets it on logout', async () => {
    const s = useSession()
    s._api = { optional: vi.fn(async (path) => (path === '/whoami' ? { name: 'ann', role: 'user' } : null)) }
    await s.login(' tok ')
    expect(localStorage.getItem('kawa.token')).toBe('tok')
    expect(s.canAct).toBe(true)
    expect(s.isAdmin).toBe(false)
    s.logout('token expired')
    expect(localStorage.getItem('kawa.token')).toBeNull()
    expect(s.loggedIn).toBe(false)
    expect(s.expired).toBe('token expired')
  })
  it('does not keep a refused token', async () => {
    const s = useSession()
    s._api = { optional: vi.fn(async () => { throw new ApiError(401, 'bad token') }) }
    await expect(s.login('nope')).rejects.toMatchObject({ status: 401 })
    expect(s.token).toBe('')
    expect(localStorage.getItem('kawa.token')).toBeNull()
  })
  it('infers the role on a host without /whoami', async () => {
    const api = (auditStatus, tarballStatus) => ({
      get: vi.fn(async (path) => {
        const status = path === '/audit' ? auditStatus : tarballStatus
        if (status === 200) return []
        throw new ApiError(status, 'x')
      }),
    })
    expect(await inferRole(api(200, 400))).toBe('admin')
    expect(await inferRole(api(403, 400))).toBe('user')
    expect(await inferRole(api(403, 403))).toBe('viewer')
    await expect(inferRole(api(401, 400))).rejects.toMatchObject({ status: 401 })
  })
})

describe('components', () => {
  it('ConnectCard shows the ssh -J line from the host info', () => {
    const s = useSession()
    s.info = { ssh_gateway: { host: 'gw', port: 2200 } }
    const w = mount(ConnectCard, { props: { task: { id: '77', name: 'dev' } } })
    expect(w.find('[data-test=ssh-line]').text()).toBe('ssh -J kawa@gw:2200 root@77')
    expect(w.find('[data-test=ssh-config]').text()).toContain('Host kawa-dev')
    expect(w.find('[data-test=vscode-link]').attributes('href')).toBe('vscode://vscode-remote/ssh-remote+kawa-dev/root')
    expect(w.find('[data-test=forward-line]').text()).toBe('kawa forward 77 8080')
    expect(w.text()).toContain('kawa ssh-config')
    s.info = { ssh_gateway: null }
  })
  it('ConnectCard offers the CLI and VS Code when the gateway is off', () => {
    const s = useSession()
    s.info = { ssh_gateway: null }
    const w = mount(ConnectCard, { props: { task: { id: '77', name: null } } })
    expect(w.find('[data-test=ssh-line]').exists()).toBe(false)
    expect(w.find('[data-test=kawa-ssh]').text()).toBe('kawa ssh 77')
    expect(w.find('[data-test=forward-line]').text()).toBe('kawa forward 77 8080')
    expect(w.find('[data-test=vscode-link]').attributes('href')).toBe('vscode://vscode-remote/ssh-remote+kawa-77/root')
  })
})
