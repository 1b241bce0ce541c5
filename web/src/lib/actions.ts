// The actions a task offers in its state (the host refuses the others).
import type { TaskView } from '../types'

export function actionsFor(task: Pick<TaskView, 'kind' | 'state'>): string[] {
  const s = task.state
  if (task.kind === 'vps') {
    if (s === 'running') return ['stop', 'restart', 'pause', 'snapshot', 'kill']
    if (s === 'paused') return ['resume', 'restart', 'kill']
    if (s === 'pending' || s === 'assigning') return ['kill']
    if (['stopped', 'failed', 'lost', 'killed', 'oom_killed', 'timed_out'].includes(s)) return ['restart', 'remove']
    return []
  }
  if (s === 'running') return ['pause', 'kill']
  if (s === 'paused') return ['resume', 'kill']
  if (s === 'pending' || s === 'assigning') return ['kill']
  return []
}
