// Cluster totals for the overview: held vs total resources, nodes and tasks by state.
import type { NodeView, TaskView } from '../types'
import { compareIds } from './format'

export interface Used {
  used: number
  total: number
}

export interface Summary {
  cores: Used
  memory: Used
  gpus: Used
  nodes: Record<string, number>
  byState: Record<string, number>
}

export function summary(nodes: NodeView[], tasks: Pick<TaskView, 'state'>[]): Summary {
  const s: Summary = {
    cores: { used: 0, total: 0 },
    memory: { used: 0, total: 0 },
    gpus: { used: 0, total: 0 },
    nodes: { online: 0, offline: 0, draining: 0 },
    byState: {},
  }
  for (const n of nodes) {
    s.nodes[n.status] = (s.nodes[n.status] || 0) + 1
    if (n.status === 'offline') continue
    s.cores.total += n.inventory.cores
    s.cores.used += n.held.cores
    s.memory.total += n.inventory.memory
    s.memory.used += n.held.memory
    s.gpus.total += (n.inventory.gpus || []).length
    s.gpus.used += (n.held.gpu_ids || []).length
  }
  for (const t of tasks) s.byState[t.state] = (s.byState[t.state] || 0) + 1
  return s
}

/** The pending tasks in the order the scheduler considers them: higher priority first,
 * then the earlier submitted (smaller id); at most ``limit``. */
export function queueOrder<T extends Pick<TaskView, 'state' | 'priority' | 'id'>>(tasks: T[], limit = 20): T[] {
  return tasks
    .filter((t) => t.state === 'pending')
    .sort((a, b) => (b.priority || 0) - (a.priority || 0) || compareIds(a.id, b.id))
    .slice(0, limit)
}
