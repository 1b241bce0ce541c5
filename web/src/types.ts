// The host's API answers, as far as the dashboard reads them (kawa.protocol: tasks, nodes,
// history, environments, meta, events, task_queries). Times are ISO 8601 text, sizes bytes.

export type TaskState =
  | 'pending' | 'assigning' | 'running' | 'paused' | 'completed' | 'failed' | 'killed'
  | 'oom_killed' | 'timed_out' | 'lost' | 'stopped' | 'removed'
export type TaskKind = 'command' | 'vps'
export type NodeStatus = 'online' | 'offline' | 'draining'
export type Role = 'viewer' | 'user' | 'admin'

export interface Mount {
  source: string
  target: string
  read_only: boolean
}

export interface TransitionView {
  at: string
  source: TaskState | null
  target: TaskState
  event: string
  cause: string
}

export interface TaskView {
  id: string
  batch_id: string
  name: string | null
  kind: TaskKind
  state: TaskState
  desired: string
  owner: string
  command: string[]
  target: string | null
  node: string | null
  numa: number | null
  gpu_ids: number[]
  cpuset: number[]
  cores: number
  memory: number | null
  gpus: number
  env: Record<string, string>
  mounts: Mount[]
  container: string | null
  image: string | null
  native: boolean
  privileged: boolean
  workdir: string | null
  network: string
  timeout: number | null
  priority: number
  exit_code: number | null
  error: string | null
  waiting_reason: string | null
  created_at: string
  started_at: string | null
  finished_at: string | null
  history?: TransitionView[]
  ssh_key?: string | null
}

export interface SubmitResponse {
  batch_id: string
  tasks: TaskView[]
}

export interface DryRunTask {
  target: string | null
  node: string | null
  starts_now: boolean
  message: string
}

export interface DryRunResponse {
  tasks: DryRunTask[]
}

export interface TaskCounts {
  by_state: Record<string, number>
  total: number
}

export interface NumaZoneInfo {
  id: number
  cpus: number[]
  memory: number
}

export interface GpuInfo {
  index: number
  uuid?: string
  name: string
  memory_total: number
  memory_used: number
  utilization?: number | null
  temperature?: number | null
  power_watts?: number | null
}

export interface NodeInventory {
  cores: number
  memory: number
  numa: NumaZoneInfo[]
  gpus: GpuInfo[]
}

export interface HeldResources {
  cores: number
  memory: number
  gpu_ids: number[]
  pinned_cpus: number[]
}

export interface NodeUsageSample {
  at: string
  cpu_percent: number
  memory_used: number
  memory_percent: number
  memory_total?: number | null
  gpus: GpuInfo[]
}

export interface NodeView {
  name: string
  url: string
  status: NodeStatus
  inventory: NodeInventory
  held: HeldResources
  usage: NodeUsageSample | null
  registered_at: string
  last_heartbeat: string | null
  running_tasks: number
}

export interface NodeHealth {
  node: NodeView
  history: NodeUsageSample[]
}

/** One GPU at a history point (null where the GPU or its driver does not say). */
export interface GpuPoint {
  index: number
  util: number | null
  memory_used: number | null
  memory_total: number | null
  temperature: number | null
  power_w: number | null
}

/** A node's measurements at `t`: unix seconds from /history, ISO text from health samples. */
export interface HistoryPoint {
  t: number | string
  cpu_percent: number
  memory_used: number
  memory_total: number
  gpus: GpuPoint[]
}

export interface NodeHistory {
  node: string
  resolution_s: number
  points: HistoryPoint[]
}

export interface WorkspaceView {
  name: string
  state: string
  image: string
  container_id: string
  created_at: string | null
  packaging: boolean
  shells: number
}

export interface EnvironmentVersionView {
  name: string
  version: string
  digest: string
  size: number
  image: string
  created_at: string
  newest: boolean
}

/** A line of a packaging answer (NDJSON); the last says done or failed. */
export interface Progress {
  phase: string
  done: number
  total: number | null
  result: EnvironmentVersionView | null
  error: string | null
}

export interface WhoAmI {
  name: string
  role: Role
}

export interface SshGateway {
  host: string
  port: number
}

export interface HostInfo {
  version: string
  cluster_id: string
  api_url: string
  ssh_gateway: SshGateway | null
  tls: boolean
  leading: boolean
}

export interface SshKeyPair {
  public_key: string
  private_key: string
}

/** A message of the events WebSocket. */
export interface ClusterEvent {
  seq: number
  type: 'task' | 'node' | 'hello' | 'reset'
  task?: TaskView | null
  node?: NodeView | null
}

/** One of a refusal's errors (a 422's): where, and what. */
export interface ApiErrorItem {
  loc?: (string | number)[]
  msg: string
}
