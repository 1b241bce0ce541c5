// The submit form's fields → a TaskSpec body for POST /api/v1/tasks, or errors by field.
// The checks mirror the API's (kawa.protocol.tasks.TaskSpec); the API stays the authority.
import type { Mount, TaskKind } from '../types'
import { splitCommand } from './format'
import * as b from './bounds'
import { parseMount } from './mounts'
import { parseDuration, parseMemory } from './units'

/** The submit form's fields as its inputs hold them (a number input gives a number). */
export interface SubmitForm {
  kind: TaskKind
  name: string
  command: string
  container: string
  cores: number | string
  memory: string
  gpus: number | string
  env: string
  mounts: string
  timeout: string
  priority: number | string
  targets: string[]
  ssh_key: string
}

/** A TaskSpec body for POST /api/v1/tasks (fields left at the API's defaults left out). */
export interface TaskBody {
  kind: TaskKind
  command?: string[]
  ssh_key?: string
  name?: string
  container?: string
  cores: number
  memory?: string
  gpus?: number
  env?: Record<string, string>
  mounts?: Mount[]
  timeout?: string
  priority?: number
  targets?: string[]
}

/** Messages by form field. */
export type FieldErrors = Record<string, string>

export function emptyForm(): SubmitForm {
  return {
    kind: 'command', name: '', command: '', container: '', cores: 1, memory: '', gpus: 0,
    env: '', mounts: '', timeout: '', priority: 0, targets: [], ssh_key: '',
  }
}

function lines(text: string): string[] {
  return text.split('\n').map((l) => l.trim()).filter(Boolean)
}

function wholeNumber(value: number | string | null | undefined, fallback: number): number {
  const text = String(value ?? '').trim()
  return text ? Number(text) : fallback
}

function commandProblem(args: string[]): string | null {
  if (!args.length) return 'no command given'
  if (args.length > b.MAX_COMMAND_ARGS) return `the command has ${args.length} arguments; the limit is ${b.MAX_COMMAND_ARGS}`
  if (args.some((a) => a.includes('\0'))) return 'NUL characters are not allowed'
  const long = args.find((a) => b.length(a) > b.MAX_ARGUMENT)
  if (long !== undefined) return `an argument is ${b.length(long)} characters; the limit is ${b.MAX_ARGUMENT}`
  const total = args.reduce((sum, a) => sum + b.length(a) + 1, 0)
  if (total > b.MAX_COMMAND_TOTAL) return `the command is ${total} characters in all; the limit is ${b.MAX_COMMAND_TOTAL}`
  return null
}

function nameProblem(name: string): string | null {
  if (b.length(name) > b.MAX_TASK_NAME) return `a name is at most ${b.MAX_TASK_NAME} characters`
  return b.nameProblem(name)
}

/** `{ env }` from KEY=VALUE lines, or `{ problem }`. */
function readEnv(text: string): { env: Record<string, string> } | { problem: string } {
  const env: Record<string, string> = {}
  for (const l of lines(text)) {
    const i = l.indexOf('=')
    if (i <= 0) return { problem: `not KEY=VALUE: ${l}` }
    const key = l.slice(0, i)
    const value = l.slice(i + 1)
    if (/^\p{Nd}/u.test(key)) return { problem: `bad environment variable name ${b.repr(key)}` }
    if (key.includes('\0') || value.includes('\0')) return { problem: 'NUL characters are not allowed' }
    if (b.length(key) > b.MAX_ENV_KEY) return { problem: `a variable name is at most ${b.MAX_ENV_KEY} characters` }
    if (b.length(value) > b.MAX_ENV_VALUE) return { problem: `the value of ${key} is longer than ${b.MAX_ENV_VALUE} characters` }
    env[key] = value
  }
  const count = Object.keys(env).length
  if (count > b.MAX_ENV_VARS) return { problem: `${count} variables; the limit is ${b.MAX_ENV_VARS}` }
  const total = Object.entries(env).reduce((sum, [k, v]) => sum + b.length(k) + b.length(v) + 2, 0)
  if (total > b.MAX_ENV_TOTAL) return { problem: `the environment is ${total} characters in all; the limit is ${b.MAX_ENV_TOTAL}` }
  return { env }
}

/** `{ mounts }` from SOURCE:TARGET[:ro|:rw] lines, or `{ problem }`. */
function readMounts(text: string): { mounts: Mount[] } | { problem: string } {
  const mounts: Mount[] = []
  for (const l of lines(text)) {
    try {
      mounts.push(parseMount(l))
    } catch (exc) {
      return { problem: (exc as Error).message }
    }
  }
  if (mounts.length > b.MAX_MOUNTS) return { problem: `${mounts.length} mounts; the limit is ${b.MAX_MOUNTS}` }
  return { mounts }
}

export function buildBody(form: SubmitForm): { body: TaskBody; errors: FieldErrors } {
  const errors: FieldErrors = {}
  const body = { kind: form.kind } as TaskBody // cores follows below
  if (form.kind === 'command') {
    try {
      body.command = splitCommand(form.command)
      const problem = commandProblem(body.command)
      if (problem) errors.command = problem
    } catch (exc) {
      errors.command = (exc as Error).message
    }
  } else {
    if (form.ssh_key.trim()) body.ssh_key = form.ssh_key.trim()
  }
  const name = form.name.trim()
  if (name) {
    body.name = name
    const problem = nameProblem(name)
    if (problem) errors.name = problem
  }
  if (form.container) body.container = form.container
  body.cores = wholeNumber(form.cores, NaN)
  if (!Number.isInteger(body.cores) || body.cores < 1 || body.cores > b.MAX_CORES) {
    errors.cores = `cores must be a whole number from 1 to ${b.MAX_CORES}`
  }
  const memory = String(form.memory ?? '').trim()
  if (memory) {
    body.memory = memory
    try {
      parseMemory(memory)
    } catch (exc) {
      errors.memory = (exc as Error).message
    }
  }
  const gpus = wholeNumber(form.gpus, 0)
  if (!Number.isInteger(gpus) || gpus < 0 || gpus > b.MAX_GPUS) errors.gpus = `GPUs must be a whole number from 0 to ${b.MAX_GPUS}`
  else if (gpus) body.gpus = gpus
  if (gpus > 0 && form.targets.some((t) => t.includes('::'))) {
    errors.gpus = 'give GPUs either in the target (node::0,1) or here, not both'
  }
  const env = readEnv(form.env)
  if ('problem' in env) errors.env = env.problem
  else if (Object.keys(env.env).length) body.env = env.env
  const mounts = readMounts(form.mounts)
  if ('problem' in mounts) errors.mounts = mounts.problem
  else if (mounts.mounts.length) body.mounts = mounts.mounts
  const timeout = String(form.timeout ?? '').trim()
  if (timeout) {
    body.timeout = timeout
    try {
      if (parseDuration(timeout) > b.MAX_TIMEOUT) errors.timeout = `a timeout is at most 366 days (${b.MAX_TIMEOUT} seconds)`
    } catch (exc) {
      errors.timeout = (exc as Error).message
    }
  }
  const priority = wholeNumber(form.priority, 0)
  if (!Number.isInteger(priority) || priority < b.MIN_PRIORITY || priority > b.MAX_PRIORITY) {
    errors.priority = `priority must be a whole number from ${b.MIN_PRIORITY} to ${b.MAX_PRIORITY}`
  } else if (priority) body.priority = priority
  if (form.targets.length > b.MAX_TARGETS) errors.targets = `${form.targets.length} targets; the limit is ${b.MAX_TARGETS}`
  if (form.targets.length) body.targets = [...form.targets]
  return { body, errors }
}
