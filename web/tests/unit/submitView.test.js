import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { nextTick } from 'vue'
import { createPinia, setActivePinia } from 'pinia'
import { mount } from '@vue/test-utils'
import { ApiError } from '../../src/lib/api'
import { PAUSE_MS } from '../../src/lib/liveErrors'
import { useSession } from '../../src/stores/session'
import SubmitView from '../../src/views/SubmitView.vue'

const push = vi.fn()
vi.mock('vue-router', () => ({ useRouter: () => ({ push }) }))

let post
beforeEach(() => {
  setActivePinia(createPinia())
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
  post = vi.fn()
  const session = useSession()
  session.role = 'user'
  session._api = { get: vi.fn(async () => [{ name: 'base' }, { name: 'gpu' }]), post }
})
afterEach(() => vi.useRealTimers())

async function typed(w, field, value) {
  await w.get(`[data-test=${field}]`).setValue(value)
  vi.advanceTimersByTime(PAUSE_MS)
  await nextTick()
}
const shown = (w, field) => w.get(`[data-test=error-${field}]`).text()

describe('submit form checked as the user types', () => {
  it('shows an edited field\'s error after a pause, and none for fields not yet touched', async () => {
    const w = mount(SubmitView)
    await typed(w, 'memory', 'lots')
    expect(shown(w, 'memory')).toMatch(/^invalid memory size 'lots'/)
    expect(shown(w, 'command')).toBe('') // empty, but not touched yet
    await typed(w, 'timeout', '1h3')
    expect(shown(w, 'timeout')).toMatch(/cannot read '3'/)
    await typed(w, 'env', '1A=x')
    expect(shown(w, 'env')).toBe("bad environment variable name '1A'")
    await typed(w, 'mounts', 'data:/data')
    expect(shown(w, 'mounts')).toMatch(/must be an absolute path/)
    await typed(w, 'priority', '5000')
    expect(shown(w, 'priority')).toMatch(/from -1000 to 1000/)
  })
  it('shows a new error once typing pauses and takes it away as soon as it is fixed', async () => {
    const w = mount(SubmitView)
    await w.get('[data-test=memory]').setValue('4X')
    expect(shown(w, 'memory')).toBe('') // a new error waits for a pause in typing
    vi.advanceTimersByTime(PAUSE_MS)
    await nextTick()
    expect(shown(w, 'memory')).toMatch(/unknown unit 'X'/)
    await w.get('[data-test=memory]').setValue('4G')
    expect(shown(w, 'memory')).toBe('')
  })
  it('shows every field\'s error after a submit attempt, and sends nothing', async () => {
    const w = mount(SubmitView)
    await w.get('[data-test=submit-form]').trigger('submit')
    expect(shown(w, 'command')).toBe('no command given')
    expect(post).not.toHaveBeenCalled()
  })
  it('shows the API\'s refusal next to the field it names, until that field is edited', async () => {
    post.mockRejectedValueOnce(new ApiError(400, "unknown container environment 'gpu'; known: base"))
    const w = mount(SubmitView)
    await nextTick()
    await typed(w, 'command', 'echo hi')
    await w.get('[data-test=environment]').setValue('gpu')
    await w.get('[data-test=submit-form]').trigger('submit')
    await vi.waitFor(() => expect(shown(w, 'container')).toMatch(/unknown container environment/))
    expect(w.find('[data-test=submit-error]').exists()).toBe(false)
    await typed(w, 'name', 'x') // another field: the refusal stays
    expect(shown(w, 'container')).toMatch(/unknown container environment/)
    await w.get('[data-test=environment]').setValue('base')
    expect(shown(w, 'container')).toBe('')
  })
  it('puts a 422\'s errors on their fields and a refusal that names none above the button', async () => {
    post.mockRejectedValueOnce(new ApiError(422, 'timeout: too long', [{ loc: ['body', 'timeout'], msg: 'Input should be less than or equal to 31622400' }]))
    post.mockRejectedValueOnce(new ApiError(400, 'no nodes registered'))
    const w = mount(SubmitView)
    await typed(w, 'command', 'true')
    await w.get('[data-test=submit-form]').trigger('submit')
    await vi.waitFor(() => expect(shown(w, 'timeout')).toMatch(/less than or equal/))
    await w.get('[data-test=submit-form]').trigger('submit')
    await vi.waitFor(() => expect(w.get('[data-test=submit-error]').text()).toBe('no nodes registered'))
    expect(shown(w, 'timeout')).toBe('')
  })
})
