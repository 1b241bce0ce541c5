import { describe, expect, it, vi } from 'vitest'
import { ApiError, createApi, query } from '../../src/lib/api'
import { INITIAL_WINDOW, T, closeFrame, decode, encode, openFrame, readI32, readU32, resizeFrame } from '../../src/lib/frames'
import { gpuCells, isIdle, measure, splitCommand, targetText, zones } from '../../src/lib/format'
import { buildBody, emptyForm } from '../../src/lib/submitBody'
import { parseDuration, parseMemory } from '../../src/lib/units'
import { parseMount } from '../../src/lib/mounts'
import { errorsByField, fieldNamedBy } from '../../src/lib/submitErrors'
import { shortcutFor } from '../../src/lib/shortcuts'
import { connectLines } from '../../src/lib/connect'
import { filterTasks } from '../../src/lib/taskFilter'
import { queueOrder, summary } from '../../src/lib/summary'
import { actionsFor } from '../../src/lib/actions'

describe('frames', () => {
  it('round-trips a frame with its header', () => {
    const f = decode(openFrame(7, { rows: 24, cols: 80 }))
    expect(f.type).toBe(T.OPEN)
    expect(f.stream).toBe(7)
    expect(JSON.parse(new TextDecoder().decode(f.payload))).toEqual({ rows: 24, cols: 80 })
  })
  it('writes sizes and integers big-endian', () => {
    const r = resizeFrame(1, 40, 132)
    expect([...r]).toEqual([T.RESIZE, 0, 0, 0, 0, 1, 0, 40, 0, 132])
    const exit = encode(T.EXIT, 1, new Uint8Array([0xff, 0xff, 0xff, 0xfe]))
    expect(readI32(decode(exit).payload)).toBe(-2)
    expect(readU32(new Uint8Array([0, 4, 0, 0]))).toBe(INITIAL_WINDOW)
    expect(closeFrame(3).length).toBe(6)
  })
  it('refuses a message shorter than the header', () => {
    expect(() => decode(new Uint8Array([1, 0, 0]))).toThrow(/too short/)
  })
})

describe('format', () => {
  it('splits a command line as a shell does', () => {
    expect(splitCommand(`sh -c 'echo "a b"; echo $((6*7))'`)).toEqual(['sh', '-c', 'echo "a b"; echo $((6*7))'])
    expect(splitCommand('echo "x \\"y\\"" z\\ w ""')).toEqual(['echo', 'x "y"', 'z w', ''])
    expect(() => splitCommand("echo 'open")).toThrow(/unterminated/)
  })
  it('writes targets as the API reads them', () => {
    expect(targetText('node1', '', [])).toBe('node1')
    expect(targetText('node1', '1', [])).toBe('node1:1')
    expect(targetText('node1', '0', [3, 1])).toBe('node1:0::1,3')
    expect(targetText('node1', '', [2])).toBe('node1::2')
  })
  const node = {
    name: 'n1',
    inventory: {
      cores: 4, memory: 8,
      numa: [{ id: 0, cpus: [0, 1], memory: 4 }, { id: 1, cpus: [2, 3], memory: 4 }],
      gpus: [{ index: 0, name: 'A', memory_total: 10 }, { index: 1, name: 'A', memory_total: 10 }],
    },
    held: { cores: 1, memory: 0, gpu_ids: [1], pinned_cpus: [2] },
    usage: { gpus: [{ index: 1, utilization: 80, memory_used: 5 }] },
  }
  it('counts held and free cores per NUMA zone', () => {
    expect(zones(node).map((z) => [z.id, z.held, z.free])).toEqual([[0, 0, 2], [1, 1, 1]])
    const flat = zones({ inventory: { cores: 3, memory: 1, numa: [] }, held: { pinned_cpus: [] } })
    expect(flat).toHaveLength(1)
    expect(flat[0].free).toBe(3)
  })
  it('labels each GPU with its utilisation and holder', () => {
    const tasks = [{ id: '9', node: 'n1', state: 'running', gpu_ids: [1] }, { id: '8', node: 'n1', state: 'completed', gpu_ids: [0] }]
    const cells = gpuCells(node, tasks)
    expect(cells[0]).toMatchObject({ index: 0, held: false, holder: null, util: null })
    expect(cells[1]).toMatchObject({ index: 1, held: true, util: 80, memory_used: 5 })
    expect(cells[1].holder.id).toBe('9')
  })
  it('gives each GPU its temperature and power, from the live sample first', () => {
    const hot = {
      ...node,
      inventory: { ...node.inventory, gpus: [{ index: 0, name: 'A', memory_total: 10, temperature: 30, power_watts: 60 }, { index: 1, name: 'A', memory_total: 10 }] },
      usage: { gpus: [{ index: 1, utilization: 80, memory_used: 5, temperature: 54.4, power_watts: 212.3 }] },
    }
    const cells = gpuCells(hot, [])
    expect(cells.map((c) => [c.temperature, c.power_w])).toEqual([[30, 60], [54.4, 212.3]])
    expect(gpuCells(node, []).map((c) => [c.temperature, c.power_w])).toEqual([[null, null], [null, null]])
  })
  it('flags a held GPU under 5% utilisation as idle', () => {
    const quiet = { ...node, usage: { gpus: [{ index: 0, utilization: 1 }, { index: 1, utilization: 2 }] } }
    const cells = gpuCells(quiet, [{ id: '9', node: 'n1', state: 'running', gpu_ids: [1] }])
    expect(cells.map((c) => [c.held, c.idle])).toEqual([[false, false], [true, true]])
    expect(gpuCells(node, [])[1].idle).toBe(false) // held at 80%
    expect(isIdle(true, 4.9)).toBe(true)
    expect(isIdle(true, 5)).toBe(false)
    expect(isIdle(true, null)).toBe(false) // unknown utilisation is not idle
    expect(isIdle(false, 0)).toBe(false)
  })
  it('writes measurements with their unit, or a dash when unknown', () => {
    expect(measure(54.4, '°C')).toBe('54 °C')
    expect(measure(212.3, 'W')).toBe('212 W')
    expect(measure(55, '%')).toBe('55%')
    expect(measure(null, 'W')).toBe('—')
    expect(measure(undefined, '°C')).toBe('—')
  })
})

describe('submit body', () => {
  it('builds a TaskSpec from the form', () => {
    const form = { ...emptyForm(), command: 'echo hi', cores: '2', memory: '1G', env: 'A=1\nB=x=y', mounts: '/d:/data:ro', targets: ['node1:0'], priority: '5', timeout: '1h' }
    const { body, errors } = buildBody(form)
    expect(errors).toEqual({})
    expect(body).toEqual({
      kind: 'command', command: ['echo', 'hi'], cores: 2, memory: '1G', env: { A: '1', B: 'x=y' },
      mounts: [{ source: '/d', target: '/data', read_only: true }], timeout: '1h', priority: 5, targets: ['node1:0'],
    })
  })
  it('names the field of each mistake', () => {
    const { errors } = buildBody({ ...emptyForm(), command: '', cores: '0', env: 'novalue', mounts: 'just-one' })
    expect(Object.keys(errors).sort()).toEqual(['command', 'cores', 'env', 'mounts'])
  })
  it('needs no command for a VPS', () => {
    const { body, errors } = buildBody({ ...emptyForm(), kind: 'vps', ssh_key: ' ssh-ed25519 AAAA k ' })
    expect(errors).toEqual({})
    expect(body.ssh_key).toBe('ssh-ed25519 AAAA k')
    expect(body.command).toBeUndefined()
  })
  const errorsOf = (fields) => buildBody({ ...emptyForm(), command: 'true', ...fields }).errors
  it('accepts what the API accepts', () => {
    for (const memory of ['4G', '512M', '512Mi', '1.5G', '4GB', '2Gi', '4GiB', '1024', '.5G', '2 gi', '1kb', '+1K']) {
      expect(errorsOf({ memory }), memory).toEqual({})
    }
    for (const timeout of ['90', '90s', '5m', '2h', '1d', '1h30m', '1.5h', '500ms', '1H 30M', '366d']) {
      expect(errorsOf({ timeout }), timeout).toEqual({})
    }
    expect(errorsOf({ env: 'MY VAR=1\nEMPTY=\nA==b', mounts: '/d:/data:rw\n/e:/f:ro\n/g:/h', priority: '-1000', cores: '4096', gpus: '64' })).toEqual({})
    expect(errorsOf({ name: 'tâche résumé 🚀', priority: 1000 })).toEqual({})
    const { body } = buildBody({ ...emptyForm(), command: 'true', mounts: '/d:/data:rw' })
    expect(body.mounts).toEqual([{ source: '/d', target: '/data', read_only: false }])
  })
  it('refuses memory and timeouts as the API does, in its words', () => {
    expect(errorsOf({ memory: 'lots' }).memory).toMatch(/^invalid memory size 'lots': it is not a number with a unit; expected /)
    expect(errorsOf({ memory: '4X' }).memory).toMatch(/unknown unit 'X'/)
    expect(errorsOf({ memory: '-1G' }).memory).toMatch(/it is negative/)
    expect(errorsOf({ memory: '0.4' }).memory).toMatch(/at least one byte/)
    expect(errorsOf({ memory: '9223372036854775808' }).memory).toMatch(/larger than 9223372036854775807 bytes/)
    expect(errorsOf({ timeout: '1h3' }).timeout).toMatch(/^invalid duration '1h3': cannot read '3'/)
    expect(errorsOf({ timeout: '30m1h' }).timeout).toMatch(/unit 'h' is repeated or out of order/)
    expect(errorsOf({ timeout: '5mins' }).timeout).toMatch(/unknown unit 'mins'/)
    expect(errorsOf({ timeout: '0s' }).timeout).toMatch(/greater than zero/)
    expect(errorsOf({ timeout: '367d' }).timeout).toMatch(/at most 366 days/)
  })
  it('keeps numbers, names, environment variables and mounts within the API\'s bounds', () => {
    expect(Object.keys(errorsOf({ cores: '4097', gpus: '65', priority: '1001' })).sort()).toEqual(['cores', 'gpus', 'priority'])
    expect(Object.keys(errorsOf({ cores: '1.5', gpus: '-1', priority: '-1001' })).sort()).toEqual(['cores', 'gpus', 'priority'])
    expect(errorsOf({ cores: '' }).cores).toMatch(/cores must be a whole number/)
    expect(errorsOf({ name: 'x'.repeat(129) }).name).toMatch(/at most 128/)
    expect(errorsOf({ name: 'bell\u0007' }).name).toBe("control character '\\x07' is not allowed in a name")
    expect(errorsOf({ name: 'a\u202eb' }).name).toMatch(/bidirectional override/)
    expect(errorsOf({ env: '1A=x' }).env).toBe("bad environment variable name '1A'")
    expect(errorsOf({ env: `A=${'x'.repeat(40_000)}` }).env).toBe('the value of A is longer than 32768 characters')
    const big = Array.from({ length: 9 }, (_, i) => `K${i}=${'x'.repeat(30_000)}`).join('\n')
    expect(errorsOf({ env: big }).env).toBe('the environment is 270036 characters in all; the limit is 262144')
    expect(errorsOf({ mounts: 'data:/data' }).mounts).toBe("mount source must be an absolute path, got 'data'")
    expect(errorsOf({ mounts: '/d:/x/../y' }).mounts).toMatch(/may not contain '\.\.'/)
    expect(errorsOf({ mounts: '/d:/./' }).mounts).toBe("mount target may not be '/'")
    expect(errorsOf({ mounts: '/d:/data:rx' }).mounts).toMatch(/^bad mount '\/d:\/data:rx'/)
    expect(errorsOf({ gpus: 1, targets: ['node1::0'] }).gpus).toMatch(/not both/)
    expect(errorsOf({ command: '' }).command).toBe('no command given')
  })
})

describe('units and mounts', () => {
  it('reads memory exactly, 1000- and 1024-based', () => {
    expect(parseMemory('512M')).toBe(512_000_000n)
    expect(parseMemory('2Gi')).toBe(2n ** 31n)
    expect(parseMemory('1.5K')).toBe(1500n)
    expect(parseMemory('0.5')).toBe(1n) // half up, as the host rounds
    expect(parseMemory('9223372036854775807')).toBe(2n ** 63n - 1n)
  })
  it('reads durations largest unit first', () => {
    expect(parseDuration('1h30m')).toBe(5400)
    expect(parseDuration(' 90 ')).toBe(90)
    expect(parseDuration('1d2h3m4s5ms')).toBeCloseTo(93784.005)
    expect(() => parseDuration('')).toThrow(/it is empty/)
    expect(() => parseDuration('-5m')).toThrow(/it is negative/)
  })
  it('reads a mount, with // kept apart from / as the host does', () => {
    expect(parseMount('/a:/b:ro')).toEqual({ source: '/a', target: '/b', read_only: true })
    expect(parseMount('/a://')).toEqual({ source: '/a', target: '//', read_only: false })
    expect(() => parseMount('/a:///')).toThrow("mount target may not be '/'")
    expect(() => parseMount('/a:/b:ro:x')).toThrow(/expected SRC:DST/)
  })
})

describe('submit errors', () => {
  const FIELDS = ['command', 'container', 'cores', 'memory', 'gpus', 'mounts', 'timeout', 'targets']
  it('puts a 422\'s errors on their fields and the rest in one line', () => {
    const exc = new ApiError(422, 'x', [
      { loc: ['body', 'memory'], msg: 'invalid memory size' },
      { loc: ['body', 'mounts', 0, 'source'], msg: 'not absolute' },
      { loc: ['body', 'kind'], msg: 'not a kind' },
      { loc: ['body'], msg: 'no command given (put it after --)' },
    ])
    expect(errorsByField(exc, FIELDS)).toEqual({
      byField: { memory: 'invalid memory size', mounts: 'not absolute', command: 'no command given (put it after --)' },
      general: 'kind: not a kind',
    })
  })
  it('puts another refusal on the one field it names, else in the general line', () => {
    const named = (detail, status = 400) => errorsByField(new ApiError(status, detail), FIELDS)
    expect(named("unknown container environment 'gpu'; known: base").byField).toEqual({ container: "unknown container environment 'gpu'; known: base" })
    expect(named("unknown node 'nope'; known nodes: node1").byField).toHaveProperty('targets')
    expect(named("unknown GPU id 7 on node 'n1'; its GPUs: 0, 1").byField).toHaveProperty('targets')
    expect(named("needs 8 cores but node 'node1' has 2").byField).toHaveProperty('cores')
    expect(named('privileged containers and host mounts need the admin role', 403).byField).toHaveProperty('mounts')
    expect(named('no node has 8 cores (largest: 4); no node has 1T memory (largest: 16G)')).toEqual({
      byField: {}, general: 'no node has 8 cores (largest: 4); no node has 1T memory (largest: 16G)',
    })
    expect(named('the viewer role cannot submit tasks', 403)).toEqual({ byField: {}, general: 'the viewer role cannot submit tasks' })
    expect(fieldNamedBy('give GPUs either in the target (node::0,1) or with --gpus, not both', FIELDS)).toBeNull()
    expect(fieldNamedBy('needs 2 cores', ['memory'])).toBeNull() // a field the form does not show
    expect(errorsByField(new Error('offline'), FIELDS)).toEqual({ byField: {}, general: 'offline' })
  })
})

describe('api', () => {
  const answer = (status, body) => Promise.resolve(new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } }))

  it('sends the token and maps validation errors to fields', async () => {
    const fetchImpl = vi.fn(() => answer(422, { detail: 'cores: too small', errors: [{ loc: ['body', 'cores'], msg: 'too small' }, { loc: ['body'], msg: 'no command' }] }))
    const api = createApi({ token: () => 'tok', fetchImpl })
    const exc = await api.post('/tasks', { cores: 0 }).catch((e) => e)
    expect(exc).toBeInstanceOf(ApiError)
    expect(exc.fieldErrors()).toEqual({ cores: 'too small', _: 'no command' })
    const [url, init] = fetchImpl.mock.calls[0]
    expect(url).toBe('/api/v1/tasks')
    expect(init.headers.Authorization).toBe('Bearer tok')
  })
  it('calls onUnauthorized on a 401 and answers null for a missing endpoint', async () => {
    const onUnauthorized = vi.fn()
    const statuses = [401, 404]
    const api = createApi({ token: () => 't', onUnauthorized, fetchImpl: () => answer(statuses.shift(), { detail: 'no' }) })
    await expect(api.get('/nodes')).rejects.toMatchObject({ status: 401 })
    expect(onUnauthorized).toHaveBeenCalledWith('no')
    expect(await api.optional('/whoami')).toBeNull()
  })
  it('writes query strings, repeating lists and leaving out empty values', () => {
    expect(query({ state: ['a', 'b'], node: '', limit: 5, x: null })).toBe('?state=a&state=b&limit=5')
  })
})

describe('pages logic', () => {
  it('maps keys to shortcuts', () => {
    expect(shortcutFor('', 'g')).toEqual({ run: null, pending: 'g' })
    expect(shortcutFor('g', 'n').run).toBe('/nodes')
    expect(shortcutFor('g', 'x').run).toBeNull()
    expect(shortcutFor('', '/').run).toBe('search')
    expect(shortcutFor('', '?').run).toBe('help')
  })
  it('writes the ssh -J line, the config block, the VS Code link and the forward line', () => {
    const c = connectLines({ id: '42', name: 'box' }, { ssh_gateway: { host: 'gw.example', port: 2222 } }, 'ignored')
    expect(c.jump).toBe('ssh -J kawa@gw.example:2222 root@42')
    expect(c.config).toBe([
      'Host kawa-box',
      '    HostName 42',
      '    User root',
      '    ProxyJump kawa@gw.example:2222',
      '    StrictHostKeyChecking accept-new', // host key settings as kawa ssh-config writes them
      '    UserKnownHostsFile ~/.ssh/kawa_known_hosts',
      '    HostKeyAlias kawa-42',
    ].join('\n'))
    expect(c.vscode).toBe('vscode://vscode-remote/ssh-remote+kawa-box/root')
    expect(c.forward).toBe('kawa forward 42 8080')
    expect(c.kawa).toBe('kawa ssh 42')
    // a name that is not one plain word is left out of the alias, as kawa ssh-config does
    expect(connectLines({ id: '42', name: 'a b' }, null, 'h').vscode).toBe('vscode://vscode-remote/ssh-remote+kawa-42/root')
    expect(connectLines({ id: '42', name: 'a b' }, null, 'h').jump).toBe('ssh -J kawa@h:8422 root@42')
    expect(connectLines({ id: '42' }, { ssh_gateway: null }, 'h').gatewayOff).toBe(true)
  })
  it('filters tasks by state, node, batch and words', () => {
    const tasks = [
      { id: '3', batch_id: '3', state: 'running', node: 'a', owner: 'ann', name: 'train', command: ['python', 'x.py'] },
      { id: '2', batch_id: '1', state: 'completed', node: 'b', owner: 'bob', name: null, command: ['echo'] },
    ]
    expect(filterTasks(tasks, { state: 'running' }).map((t) => t.id)).toEqual(['3'])
    expect(filterTasks(tasks, { node: 'b' }).map((t) => t.id)).toEqual(['2'])
    expect(filterTasks(tasks, { batch: '1' }).map((t) => t.id)).toEqual(['2'])
    expect(filterTasks(tasks, { q: 'PYTHON ann' }).map((t) => t.id)).toEqual(['3'])
  })
  it('sums what online nodes hold', () => {
    const n = (status, cores, held) => ({ status, inventory: { cores, memory: 10, gpus: [{}] }, held: { cores: held, memory: 1, gpu_ids: [] } })
    const s = summary([n('online', 4, 1), n('offline', 8, 0), n('draining', 2, 2)], [{ state: 'running' }, { state: 'running' }])
    expect(s.cores).toEqual({ used: 3, total: 6 })
    expect(s.nodes).toEqual({ online: 1, offline: 1, draining: 1 })
    expect(s.byState).toEqual({ running: 2 })
  })
  it('offers only the actions a state allows', () => {
    expect(actionsFor({ kind: 'command', state: 'running' })).toEqual(['pause', 'kill'])
    expect(actionsFor({ kind: 'command', state: 'completed' })).toEqual([])
    expect(actionsFor({ kind: 'vps', state: 'stopped' })).toContain('restart')
  })
})

describe('queueOrder', () => {
  it('lists pending tasks by priority, then the earlier first', () => {
    const t = (id, state, priority) => ({ id, state, priority })
    const tasks = [t('30', 'pending', 0), t('12', 'running', 9), t('25', 'pending', 5),
      t('100', 'pending', 0), t('9', 'pending', 0)]
    expect(queueOrder(tasks).map((x) => x.id)).toEqual(['25', '9', '30', '100'])
    expect(queueOrder(tasks, 2).map((x) => x.id)).toEqual(['25', '9'])
  })
})
