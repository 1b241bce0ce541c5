// Node health samples (NodeUsageSample) as history points ({t, cpu_percent, memory_used, ...}).

export function historyPoints(samples) {
  return (samples || []).map((s) => ({
    t: s.at,
    cpu_percent: s.cpu_percent,
    memory_used: s.memory_used,
    memory_total: s.memory_percent ? Math.round((100 * s.memory_used) / s.memory_percent) : 0,
    gpus: (s.gpus || []).map((g) => ({
      index: g.index,
      util: g.utilization ?? null,
      memory_used: g.memory_used,
      memory_total: g.memory_total,
      temperature: g.temperature ?? null,
      power_w: g.power_watts ?? null,
    })),
  }))
}
