// Node health samples (NodeUsageSample) as history points ({t, cpu_percent, memory_used, ...}).
import type { GpuPoint, HistoryPoint, NodeUsageSample } from '../types'

export function historyPoints(samples: NodeUsageSample[] | null | undefined): HistoryPoint[] {
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

/** A point's time as unix seconds: /history sends seconds, health samples ISO text. */
export function unixSeconds(t: number | string): number {
  if (typeof t === 'number') return t
  return new Date(t).getTime() / 1000
}

/** One GPU's lines over `points`: util %, memory %, and °C (null when no point has it). */
export function gpuLines(points: HistoryPoint[], index: number) {
  const pick = (p: HistoryPoint): Partial<GpuPoint> => (p.gpus || []).find((g) => g.index === index) || {}
  const gpus = points.map(pick)
  const temperature = gpus.map((g) => g.temperature ?? null)
  return {
    util: gpus.map((g) => g.util ?? null),
    memory: gpus.map((g) => (g.memory_total ? (100 * (g.memory_used as number)) / g.memory_total : null)),
    temperature: temperature.some((v) => v !== null) ? temperature : null,
  }
}
