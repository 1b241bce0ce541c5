// What the cluster looks like: nodes, tasks and recent events, kept live by one events
// WebSocket per tab.
import { markRaw } from 'vue'
import { defineStore } from 'pinia'
import { EventSocket, type SocketStatus, eventsUrl } from '../lib/events'
import { compareIds } from '../lib/format'
import { useSession } from './session'
import type { ClusterEvent, NodeView, TaskView } from '../types'

const RECENT = 50
const TASK_LIMIT = 1000

/** A line of the recent events list. */
export interface RecentEvent {
  seq: number
  at: string
  type: string
  text: string
}

/** See `marks` in the state. Keys are `task:ID` and `node:NAME`. */
interface Marks {
  clock: number
  touched: Map<string, number>
  applied: number
  open: Map<number, number>
}

// Kept on the store but outside its state: the events socket while connected.
interface Held {
  socket?: EventSocket | null
}

export const useCluster = defineStore('cluster', {
  state: () => ({
    nodes: {} as Record<string, NodeView>,
    tasks: {} as Record<string, TaskView>,
    events: [] as RecentEvent[],
    status: 'offline' as SocketStatus,
    loaded: false,
    error: '',
    // The oldest task id held when the host had more than TASK_LIMIT tasks (else null):
    // events about older tasks are left out, so the store stays at the newest ones
    // however many pending tasks the host updates (the task list asks for older ones).
    floor: null as string | null,
    // Which task or node each event or answer last changed, on a counter that reloads and sent
    // actions also read: their answers may have been made before a change that reached
    // this tab first, so they never replace what changed after they began. `open`
    // counts the marks of actions under way (their entries are kept until answered).
    marks: markRaw<Marks>({ clock: 0, touched: new Map(), applied: 0, open: new Map() }),
    // Counts the stream's hello and reset events: pages that hold what no event reports
    // (workspaces, packaged versions) read it again when it changes.
    resyncs: 0,
  }),
  getters: {
    nodeList: (s) => Object.values(s.nodes).sort((a, b) => a.name.localeCompare(b.name)),
    taskList: (s) => Object.values(s.tasks).sort((a, b) => compareIds(b.id, a.id)),
  },
  actions: {
    async reload(): Promise<void> {
      const marks = this.marks
      const start = ++marks.clock
      try {
        const api = useSession().api()
        const [nodes, tasks] = await Promise.all([
          api.get<NodeView[]>('/nodes'),
          api.get<TaskView[]>('/tasks', { limit: TASK_LIMIT }),
        ])
        if (start < marks.applied) return // a reload begun later has answered already
        marks.applied = start
        this.nodes = merged(nodes.map((n) => [n.name, n]), this.nodes, 'node', marks, start)
        this.tasks = merged(tasks.map((t) => [t.id, t]), this.tasks, 'task', marks, start)
        const floor = Math.min(start, ...marks.open.keys())
        for (const [key, at] of marks.touched) if (at <= floor) marks.touched.delete(key)
        this.floor = tasks.length >= TASK_LIMIT
          ? tasks.reduce((m: string, t) => (compareIds(t.id, m) < 0 ? t.id : m), tasks[0].id)
          : null
        this.loaded = true
        this.error = ''
      } catch (exc) {
        this.error = (exc as Error).message
      }
    },
    // A task or node as an event (no `since`) or an action's answer says it is; an
    // answer to an action begun at mark `since` is dropped when an event changed the
    // task or node after that (the event may be the newer; a later one fixes it if not).
    putTask(task: TaskView, since?: number): void {
      if (this._newerThan(`task:${task.id}`, since)) return
      this.tasks[task.id] = task
    },
    putNode(node: NodeView, since?: number): void {
      if (this._newerThan(`node:${node.name}`, since)) return
      this.nodes[node.name] = node
    },
    _newerThan(key: string, since?: number): boolean {
      if (since !== undefined && (this.marks.touched.get(key) || 0) > since) return true
      this.marks.touched.set(key, ++this.marks.clock)
      return false
    },
    // Marks the start of an action whose answer will be put with `since`; `unmark` it
    // once answered (or failed).
    mark(): number {
      const since = this.marks.clock
      this.marks.open.set(since, (this.marks.open.get(since) || 0) + 1)
      return since
    },
    unmark(since: number): void {
      const left = (this.marks.open.get(since) || 0) - 1
      if (left > 0) this.marks.open.set(since, left)
      else this.marks.open.delete(since)
    },
    apply(event: ClusterEvent): void {
      // "hello" opens each connection, once the host sends this tab every later change:
      // reading everything then misses nothing.
      if (event.type === 'reset' || event.type === 'hello') {
        this.resyncs += 1
        this.reload()
        return
      }
      let changed: boolean
      if (event.type === 'task' && event.task) {
        const t = event.task
        if (!this.tasks[t.id] && this.floor !== null && compareIds(t.id, this.floor) < 0) return
        changed = this.tasks[event.task.id]?.state !== event.task.state
        this.putTask(event.task)
      } else if (event.type === 'node' && event.node) {
        changed = this.nodes[event.node.name]?.status !== event.node.status
        this.putNode(event.node)
      } else {
        return
      }
      if (!changed) return  // a heartbeat or a field update: no line in the event list
      this.events.unshift({
        seq: event.seq,
        at: new Date().toISOString(),
        type: event.type,
        text: describe(event),
      })
      if (this.events.length > RECENT) this.events.length = RECENT
    },
    connect(): void {
      const held = this as Held
      if (held.socket) return
      const session = useSession()
      held.socket = new EventSocket({
        url: (after) => eventsUrl(window.location, session.token, after),
        onEvent: (e) => this.apply(e),
        onStatus: (s) => {
          this.status = s
        },
        onRefused: () => session.identify().catch(() => {}),
      })
      held.socket.start()
      this.reload() // the first paint need not wait for the stream's hello
    },
    disconnect(): void {
      const held = this as Held
      if (held.socket) held.socket.stop()
      held.socket = null
      this.marks.applied = ++this.marks.clock // a reload still under way answers no one
      this.marks.touched.clear()
      this.nodes = {}
      this.tasks = {}
      this.events = []
      this.loaded = false
      this.floor = null
    },
  },
})

// A reload's answer as an object by key, but with what an event or action changed
// after the reload began (the newer of the two) kept from `current`.
function merged<V>(
  entries: [string, V][],
  current: Record<string, V>,
  kind: string,
  marks: Marks,
  start: number,
): Record<string, V> {
  const out = Object.fromEntries(entries)
  for (const [key, value] of Object.entries(current)) {
    if ((marks.touched.get(`${kind}:${key}`) || 0) > start) out[key] = value
  }
  return out
}

export function describe(event: ClusterEvent): string {
  if (event.type === 'task') {
    const t = event.task as TaskView
    const where = t.node ? ` on ${t.node}` : ''
    return `task ${t.id}${t.name ? ` (${t.name})` : ''} ${t.state}${where}`
  }
  if (event.type === 'node') {
    const n = event.node as NodeView
    return `node ${n.name} ${n.status}`
  }
  return event.type
}
