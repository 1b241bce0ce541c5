// How to reach a VPS: `ssh -J` through the host's SSH gateway, an ssh_config block, kawa ssh.

const ALIAS = /^[A-Za-z0-9._-]+$/

export function connectLines(task, info, fallbackHost) {
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
    config: [`Host ${alias}`, `    HostName ${task.id}`, '    User root', `    ProxyJump ${jump}`].join('\n'),
    kawa: `kawa ssh ${task.id}`,
  }
}
