import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { flushPromises, mount } from '@vue/test-utils'
import { useSession } from '../../src/stores/session'
import LogView from '../../src/components/LogView.vue'

/** A streamed answer whose chunks the test sends one by one. */
function stream() {
  const waiting = []
  const queued = []
  const encoder = new TextEncoder()
  const push = (item) => (waiting.length ? waiting.shift()(item) : queued.push(item))
  return {
    response: {
      body: {
        getReader: () => ({
          read: () => (queued.length ? Promise.resolve(queued.shift()) : new Promise((r) => waiting.push(r))),
        }),
      },
    },
    send: (text) => push({ value: encoder.encode(text), done: false }),
    end: () => push({ value: undefined, done: true }),
  }
}

let answer
let raw

beforeEach(() => {
  setActivePinia(createPinia())
  raw = vi.fn(async () => {
    answer = stream() // each request its own answer
    return answer.response
  })
  useSession()._api = { raw }
})

afterEach(() => vi.restoreAllMocks())

const textOf = (blob) => new Promise((resolve) => {
  const reader = new FileReader()
  reader.onload = () => resolve(reader.result)
  reader.readAsText(blob)
})
const text = (w) => w.find('[data-test=log-text]').text()

describe('log view', () => {
  it('follows a running task and filters its lines in any case', async () => {
    const w = mount(LogView, { props: { task: '5', state: 'running' } })
    await flushPromises()
    expect(raw).toHaveBeenCalledWith('GET', '/tasks/5/logs', expect.objectContaining({ params: { stream: 'stdout', follow: true } }))
    answer.send('Alpha one\nbeta two\nalpha three\n')
    await flushPromises()
    expect(text(w)).toBe('Alpha one\nbeta two\nalpha three')
    await w.find('[data-test=log-filter]').setValue('ALPHA')
    expect(text(w)).toBe('Alpha one\nalpha three')
    await w.find('[data-test=log-filter]').setValue('')
    expect(text(w)).toContain('beta two')
  })

  it('holds new output while paused and shows it all on resume', async () => {
    const w = mount(LogView, { props: { task: '5', state: 'running' } })
    await flushPromises()
    answer.send('first\n')
    await flushPromises()
    await w.find('[data-test=log-pause]').trigger('click')
    expect(w.find('[data-test=log-pause]').text()).toBe('resume')
    answer.send('second\n')
    answer.send('third\n')
    await flushPromises()
    expect(text(w)).toBe('first')
    expect(w.find('[data-test=log-held]').text()).toContain('13 new characters')
    await w.find('[data-test=log-pause]').trigger('click')
    await flushPromises()
    expect(text(w)).toBe('first\nsecond\nthird')
    expect(w.find('[data-test=log-held]').exists()).toBe(false)
  })

  it('downloads the whole kept text, held output too, filter or not', async () => {
    const blobs = []
    URL.createObjectURL = vi.fn((blob) => { blobs.push(blob); return 'blob:log' })
    URL.revokeObjectURL = vi.fn()
    const names = []
    vi.spyOn(HTMLAnchorElement.prototype, 'click').mockImplementation(function () { names.push(this.download) })
    const w = mount(LogView, { props: { task: '42', state: 'completed' } })
    await flushPromises()
    answer.send('kept\nother\n')
    await flushPromises()
    await w.find('[data-test=log-filter]').setValue('kept')
    await w.find('[data-test=log-pause]').trigger('click')
    answer.send('held\n')
    await flushPromises()
    await w.find('[data-test=log-download]').trigger('click')
    expect(names).toEqual(['task-42-stdout.log'])
    expect(await textOf(blobs[0])).toBe('kept\nother\nheld\n')
    await w.find('[data-test=stderr]').setValue(true) // the other stream: read from the start
    await flushPromises()
    await w.find('[data-test=log-pause]').trigger('click')
    answer.send('err line\n')
    await flushPromises()
    expect(text(w)).toBe('')
    await w.find('[data-test=log-filter]').setValue('')
    expect(text(w)).toBe('err line')
    await w.find('[data-test=log-download]').trigger('click')
    expect(names).toEqual(['task-42-stdout.log', 'task-42-stderr.log'])
    expect(await textOf(blobs[1])).toBe('err line\n')
  })

  it('reads a batch once, without following, and names its download after the batch', async () => {
    URL.createObjectURL = vi.fn(() => 'blob:log')
    URL.revokeObjectURL = vi.fn()
    const names = []
    vi.spyOn(HTMLAnchorElement.prototype, 'click').mockImplementation(function () { names.push(this.download) })
    const w = mount(LogView, { props: { batch: '77' } })
    await flushPromises()
    expect(raw).toHaveBeenCalledWith('GET', '/batches/77/logs', expect.objectContaining({ params: { stream: 'stdout' } }))
    answer.send('[a] one\n[b] two\n')
    answer.end()
    await flushPromises()
    expect(text(w)).toBe('[a] one\n[b] two')
    expect(w.find('[data-test=log-status]').text()).toBe('end of log')
    await w.find('[data-test=log-download]').trigger('click')
    expect(names).toEqual(['batch-77-stdout.log'])
  })
})
