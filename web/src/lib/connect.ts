// How to reach a VPS. Without Kawa on the client: `ssh -J` through the host's SSH gateway,
// or an ssh_config block doing the same. With the Kawa CLI: `kawa ssh`, and `kawa
// ssh-config`, whose blocks go through `kawa proxy` instead (src/kawa/cli/ssh.py): the
// gateway's block keeps the CLI's Host alias and host key settings, so either block
// serves the VS Code link and both keep the VPS's host key in the same place.

import type { HostInfo, TaskView } from '../types'

const ALIAS = /^[A-Za-z0-9._-]+$/
export const FORWARD_PORT = 8080

export function connectLines(
  task: Pick<TaskView, 'id' | 'name'>,
  info: Pick<HostInfo, 'ssh_gateway'> | null | undefined,
  fallbackHost?: string,
) {
  const gw = info ? info.ssh_gateway : undefined
  const gatewayOff = gw === null
  const host = (gw && gw.host) || fallbackHost || 'HOST'
  const port = (gw && gw.port) || 8422
  const jump = `kawa@${host}:${port}`
  const alias = `kawa-${task.name && ALIAS.test(task.name) ? task.name : task.id}`
  return {
    gatewayOff,
    alias,
    jump: `ssh -J ${jump} root@${task.id}`,
    config: [
      `Host ${alias}`,
      `    HostName ${task.id}`,
      '    User root',
      `    ProxyJump ${jump}`,
      '    StrictHostKeyChecking accept-new',
      '    UserKnownHostsFile ~/.ssh/kawa_known_hosts',
      `    HostKeyAlias kawa-${task.id}`,
    ].join('\n'),
    kawa: `kawa ssh ${task.id}`,
    forward: `kawa forward ${task.id} ${FORWARD_PORT}`,
    vscode: `vscode://vscode-remote/ssh-remote+${alias}/root`,
  }
}
