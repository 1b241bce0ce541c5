import { beforeEach, describe, expect, it } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { RouterLinkStub, mount } from '@vue/test-utils'
import { gpuRows, gpuTotals, holderText } from '../../src/lib/gpus'
import { shortcutFor } from '../../src/lib/shortcuts'
import { useCluster } from '../../src/stores/cluster'
import GpusView from '../../src/views/GpusView.vue'

beforeEach(() => setActivePinia(createPinia()))

const a100 = (index, more = {}) => ({ index, name: 'A100', memory_total: 80, memory_used: 0, ...more })
const nodes = [
  {
    name: 'alpha',
    status: 'online',
    inventory: { gpus: [a100(0), a100(1)] },
    held: { gpu_ids: [0, 1] },
    usage: {
      gpus: [
        a100(0, { utilization: 90, memory_used: 40, temperature: 61, power_watts: 300 }),
        a100(1, { utilization: 2, memory_used: 1, temperature: 35 }),
      ],
    },
  },
  { name: 'beta', status: 'offline', inventory: { gpus: [a100(0)] }, held: { gpu_ids: [] }, usage: null },
  { name: 'cpu-only', status: 'online', inventory: { gpus: [] }, held: { gpu_ids: [] } },
]
const tasks = [
  { id: '7', kind: 'command', name: 'train', node: 'alpha', state: 'running', gpu_ids: [0] },
  { id: '8', kind: 'vps', name: null, node: 'alpha', state: 'running', gpu_ids: [1] },
  { id: '5', kind: 'command', node: 'beta', state: 'completed', gpu_ids: [0] },
]

describe('GPUs page', () => {
  it('has one row per GPU of every node, with its node and measurements', () => {
    const rows = gpuRows(nodes, tasks)
    expect(rows.map((r) => [r.node, r.index])).toEqual([['alpha', 0], ['alpha', 1], ['beta', 0]])
    expect(rows[0]).toMatchObject({ name: 'A100', util: 90, memory_used: 40, memory_total: 80, temperature: 61, power_w: 300, idle: false })
    expect(rows[1]).toMatchObject({ util: 2, temperature: 35, power_w: null, held: true, idle: true })
    expect(rows[2]).toMatchObject({ node_status: 'offline', util: null, temperature: null, held: false, holder: null })
  })
  it('names the task or VPS holding each GPU (finished tasks hold none)', () => {
    const rows = gpuRows(nodes, tasks)
    expect(rows.map((r) => r.holder && holderText(r.holder))).toEqual(['task 7 (train)', 'VPS 8', null])
  })
  it('counts GPUs, held ones and idle ones', () => {
    expect(gpuTotals(gpuRows(nodes, tasks))).toEqual({ total: 3, held: 2, idle: 1 })
    expect(gpuRows([], tasks)).toEqual([])
  })
  it('is two keys away: g g', () => {
    expect(shortcutFor('', 'g')).toEqual({ run: null, pending: 'g' })
    expect(shortcutFor('g', 'g')).toEqual({ run: '/gpus', pending: '' })
  })
})

describe('GpusView', () => {
  const view = () => mount(GpusView, { global: { stubs: { RouterLink: RouterLinkStub } } })
  it('says so when the cluster has no GPUs', () => {
    const c = useCluster()
    c.loaded = true
    c.putNode(nodes[2])
    expect(view().get('[data-test=gpus-empty]').text()).toBe('no GPUs in the cluster')
  })
  it('re-renders from the store as nodes and tasks change', async () => {
    const c = useCluster()
    c.loaded = true
    const w = view()
    c.putNode(nodes[0])
    await w.vm.$nextTick()
    const rows = w.findAll('[data-test=gpu-row]')
    expect(rows).toHaveLength(2)
    expect(rows[0].get('[data-test=gpu-temperature]').text()).toBe('61 °C')
    expect(rows[0].get('[data-test=gpu-power]').text()).toBe('300 W')
    expect(rows[1].get('[data-test=gpu-power]').text()).toBe('—')
    expect(rows[1].find('[data-test=gpu-idle]').exists()).toBe(true)
    c.putTask(tasks[0])
    await w.vm.$nextTick()
    const link = w.findAll('[data-test=gpu-holder]')[0].getComponent(RouterLinkStub)
    expect(link.props('to')).toBe('/tasks/7')
    expect(link.text()).toBe('task 7 (train)')
  })
})
