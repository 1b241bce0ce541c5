// The GPUs page's rows: every GPU of every node, from the store's nodes and tasks.
import type { NodeStatus, NodeView, TaskView } from '../types'
import { type GpuCell, gpuCells } from './format'

export interface GpuRow extends GpuCell {
  node: string
  node_status: NodeStatus
}

/** One row per GPU, nodes in the order given, GPUs in inventory order. */
export function gpuRows(nodes: NodeView[], tasks: TaskView[]): GpuRow[] {
  return nodes.flatMap((n) =>
    gpuCells(n, tasks).map((g) => ({ ...g, node: n.name, node_status: n.status })),
  )
}

/** How many GPUs there are, are held, and are held but idle. */
export function gpuTotals(rows: Pick<GpuRow, 'held' | 'idle'>[]) {
  return {
    total: rows.length,
    held: rows.filter((r) => r.held).length,
    idle: rows.filter((r) => r.idle).length,
  }
}

/** What a GPU's holder is called: "task ID" or "VPS ID". */
export function holderText(task: Pick<TaskView, 'kind' | 'id' | 'name'>): string {
  return `${task.kind === 'vps' ? 'VPS' : 'task'} ${task.id}${task.name ? ` (${task.name})` : ''}`
}
