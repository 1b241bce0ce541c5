// The task list's filters: state, node, batch and free text (newest first is the input's order).

export function filterTasks(tasks, { state = '', node = '', batch = '', q = '' } = {}) {
  const text = q.trim().toLowerCase()
  return tasks.filter((t) => {
    if (state && t.state !== state) return false
    if (node && t.node !== node) return false
    if (batch && String(t.batch_id) !== batch.trim()) return false
    if (!text) return true
    const hay = [t.id, t.name || '', t.owner, t.node || '', ...(t.command || [])].join(' ').toLowerCase()
    return text.split(/\s+/).every((w) => hay.includes(w))
  })
}
