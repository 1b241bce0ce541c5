// The task list's filters: state, node, batch, owner and free text (newest first is the
// input's order), and the same filters as the host's query parameters.
import type { Params } from './api'
import type { TaskView } from '../types'

/** The filters as the list's inputs hold them (every one optional here). */
export interface TaskFilters {
  state?: string
  node?: string
  batch?: string
  owner?: string
  q?: string
}

export function filterTasks(
  tasks: TaskView[],
  { state = '', node = '', batch = '', owner = '', q = '' }: TaskFilters = {},
): TaskView[] {
  const text = q.trim().toLowerCase()
  return tasks.filter((t) => {
    if (state && t.state !== state) return false
    if (node && t.node !== node) return false
    if (batch && String(t.batch_id) !== batch.trim()) return false
    if (owner.trim() && t.owner !== owner.trim()) return false
    if (!text) return true
    const hay = [t.id, t.name || '', t.owner, t.node || '', ...(t.command || [])].join(' ').toLowerCase()
    return text.split(/\s+/).every((w) => hay.includes(w))
  })
}

/** `GET /tasks` parameters for the filters (empty ones left out), with `extra` (paging). */
export function taskQuery(
  { state = '', node = '', batch = '', owner = '', q = '' }: TaskFilters = {},
  extra: Params = {},
): Params {
  const wanted = { state, node, batch: batch.trim(), owner: owner.trim(), q: q.trim() }
  return { ...extra, ...Object.fromEntries(Object.entries(wanted).filter(([, v]) => v)) }
}

/** The batch the list is filtered by, when it is one the host can look up (digits). */
export function batchOf({ batch = '' }: TaskFilters = {}): string {
  const id = batch.trim()
  return /^\d+$/.test(id) ? id : ''
}
