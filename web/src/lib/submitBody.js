// The submit form's fields → a TaskSpec body for POST /api/v1/tasks, or errors by field.
import { splitCommand } from './format.js'

export function emptyForm() {
  return {
    kind: 'command', name: '', command: '', container: '', cores: 1, memory: '', gpus: 0,
    env: '', mounts: '', timeout: '', priority: 0, targets: [], ssh_key: '',
  }
}

function lines(text) {
  return text.split('\n').map((l) => l.trim()).filter(Boolean)
}

export function buildBody(form) {
  const errors = {}
  const body = { kind: form.kind }
  if (form.kind === 'command') {
    try {
      body.command = splitCommand(form.command)
      if (!body.command.length) errors.command = 'give a command to run'
    } catch (exc) {
      errors.command = exc.message
    }
  } else {
    if (form.ssh_key.trim()) body.ssh_key = form.ssh_key.trim()
  }
  if (form.name.trim()) body.name = form.name.trim()
  if (form.container) body.container = form.container
  body.cores = Number(form.cores)
  if (!Number.isInteger(body.cores) || body.cores < 1) errors.cores = 'cores must be a whole number ≥ 1'
  if (String(form.memory).trim()) body.memory = String(form.memory).trim()
  const gpus = Number(form.gpus || 0)
  if (!Number.isInteger(gpus) || gpus < 0) errors.gpus = 'GPUs must be a whole number ≥ 0'
  else if (gpus) body.gpus = gpus
  const env = {}
  for (const l of lines(form.env)) {
    const i = l.indexOf('=')
    if (i <= 0) {
      errors.env = `not KEY=VALUE: ${l}`
      break
    }
    env[l.slice(0, i)] = l.slice(i + 1)
  }
  if (Object.keys(env).length) body.env = env
  const mounts = []
  for (const l of lines(form.mounts)) {
    const parts = l.split(':')
    const ro = parts.length === 3 && parts[2] === 'ro'
    if (parts.length < 2 || parts.length > 3 || (parts.length === 3 && !ro) || !parts[0] || !parts[1]) {
      errors.mounts = `not SOURCE:TARGET[:ro]: ${l}`
      break
    }
    mounts.push({ source: parts[0], target: parts[1], read_only: ro })
  }
  if (mounts.length) body.mounts = mounts
  if (String(form.timeout).trim()) body.timeout = String(form.timeout).trim()
  const priority = Number(form.priority || 0)
  if (!Number.isInteger(priority)) errors.priority = 'priority must be a whole number'
  else if (priority) body.priority = priority
  if (form.targets.length) body.targets = [...form.targets]
  return { body, errors }
}
