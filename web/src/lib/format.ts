// Small display helpers shared by the pages.
import type { NodeView, NumaZoneInfo, TaskState, TaskView } from '../types'

export const FINAL = new Set<string>(['completed', 'failed', 'killed', 'oom_killed', 'timed_out', 'removed'])
export const ACTIVE = new Set<string>(['pending', 'assigning', 'running', 'paused'])
export const STATES: TaskState[] = [
  'pending', 'assigning', 'running', 'paused', 'completed', 'failed', 'killed', 'oom_killed',
  'timed_out', 'lost', 'stopped', 'removed',
]

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i += 1
  }
  return `${v >= 10 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`
}

export function when(iso: string | null | undefined): string {
  if (!iso) return '—'
  const d = new Date(iso)
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString()
}

export function ago(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return '—'
  const s = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000))
  if (s < 60) return `${s}s ago`
  if (s < 3600) return `${Math.floor(s / 60)}m ago`
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`
  return `${Math.floor(s / 86400)}d ago`
}

/** Split a command line into words as a POSIX shell would (quotes and backslashes). */
export function splitCommand(line: string): string[] {
  const words: string[] = []
  let word = ''
  let has = false
  let quote: string | null = null
  for (let i = 0; i < line.length; i += 1) {
    const c = line[i]
    if (quote === "'") {
      if (c === "'") quote = null
      else word += c
    } else if (quote === '"') {
      if (c === '"') quote = null
      else if (c === '\\' && i + 1 < line.length && '"\\$`'.includes(line[i + 1])) word += line[++i]
      else word += c
    } else if (c === "'" || c === '"') {
      quote = c
      has = true
    } else if (c === '\\' && i + 1 < line.length) {
      word += line[++i]
      has = true
    } else if (/\s/.test(c)) {
      if (has || word) words.push(word)
      word = ''
      has = false
    } else {
      word += c
    }
  }
  if (quote) throw new Error(`unterminated ${quote} quote`)
  if (has || word) words.push(word)
  return words
}

/** A target as the API writes it: NODE[:NUMA][::GPU,...]. */
export function targetText(node: string, numa?: string | number | null, gpus?: number[] | null): string {
  let t = node
  if (numa !== null && numa !== undefined && numa !== '') t += `:${numa}`
  if (gpus && gpus.length) t += `::${[...gpus].sort((a, b) => a - b).join(',')}`
  return t
}

export interface Zone {
  id: number
  cpus: number[]
  memory: number
  held: number
  free: number
}

/** Per-zone use of a node: cpus held (pinned) and free, from its inventory and holdings. */
export function zones(node: Pick<NodeView, 'inventory' | 'held'>): Zone[] {
  const inv: Partial<NodeView['inventory']> = node.inventory || {}
  const pinned = new Set((node.held && node.held.pinned_cpus) || [])
  const list: NumaZoneInfo[] = inv.numa && inv.numa.length
    ? inv.numa
    : [{ id: 0, cpus: Array.from({ length: inv.cores || 0 }, (_, i) => i), memory: inv.memory || 0 }]
  return list.map((z) => {
    const held = z.cpus.filter((c) => pinned.has(c)).length
    return { id: z.id, cpus: z.cpus, memory: z.memory, held, free: z.cpus.length - held }
  })
}

/** Below this utilisation (%) a held GPU counts as idle. */
export const IDLE_UTIL = 5

/** Whether a GPU is held but barely used (unknown utilisation is not idle). */
export function isIdle(held: unknown, util: number | null | undefined): boolean {
  return Boolean(held) && util !== null && util !== undefined && util < IDLE_UTIL
}

/** A measurement rounded with its unit, or '—' when unknown. */
export function measure(value: number | null | undefined, unit: string): string {
  if (value === null || value === undefined) return '—'
  return `${Math.round(value)}${unit === '%' ? '' : ' '}${unit}`
}

export interface GpuCell {
  index: number
  name: string
  util: number | null
  memory_used: number
  memory_total: number
  temperature: number | null
  power_w: number | null
  held: boolean
  holder: TaskView | null
  idle: boolean
}

/** GPUs of a node with their measurements and the task holding each (from the task list). */
export function gpuCells(node: Pick<NodeView, 'name' | 'inventory' | 'held' | 'usage'>, tasks: TaskView[]): GpuCell[] {
  const inv = (node.inventory && node.inventory.gpus) || []
  const live = new Map(((node.usage && node.usage.gpus) || []).map((g) => [g.index, g]))
  const heldIds = new Set((node.held && node.held.gpu_ids) || [])
  const holders = new Map<number, TaskView>()
  for (const t of tasks) {
    if (t.node !== node.name || !ACTIVE.has(t.state)) continue
    for (const g of t.gpu_ids || []) holders.set(g, t)
  }
  return inv.map((g) => {
    const now = live.get(g.index) || g
    const holder = holders.get(g.index) || null
    const held = heldIds.has(g.index) || holder !== null
    const util = now.utilization ?? null
    return {
      index: g.index,
      name: g.name,
      util,
      memory_used: now.memory_used ?? 0,
      memory_total: g.memory_total,
      temperature: now.temperature ?? null,
      power_w: now.power_watts ?? null,
      held,
      holder,
      idle: isIdle(held, util),
    }
  })
}

/** Order task ids (decimal strings past 2^53) numerically: newest last. */
export function compareIds(a: string | number, b: string | number): number {
  const x = String(a)
  const y = String(b)
  if (x.length !== y.length) return x.length - y.length
  return x < y ? -1 : x > y ? 1 : 0
}
