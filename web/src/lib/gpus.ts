// The GPUs page's rows: every GPU of every node, from the store's nodes and tasks.
import { gpuCells } from './format'

/** One row per GPU, nodes in the order given, GPUs in inventory order. */
export function gpuRows(nodes, tasks) {
  return nodes.flatMap((n) =>
    gpuCells(n, tasks).map((g) => ({ ...g, node: n.name, node_status: n.status })),
  )
}

/** How many GPUs there are, are held, and are held but idle. */
export function gpuTotals(rows) {
  return {
    total: rows.length,
    held: rows.filter((r) => r.held).length,
    idle: rows.filter((r) => r.idle).length,
  }
}

/** What a GPU's holder is called: "task ID" or "VPS ID". */
export function holderText(task) {
  return `${task.kind === 'vps' ? 'VPS' : 'task'} ${task.id}${task.name ? ` (${task.name})` : ''}`
}
