/**
 * Simulation sources: streams of trajectories of a built-in system, ready for `writeWell` or any stage.
 */
import { named, type Stage } from '../../streams/core.js';
import type { WellTrajectory } from '../../formats/well/writer.js';
import { trajectorySeed } from '../../streams/random.js';
import { taskFileStem, taskFrames, type SimulationTask, type TaskTemplate, type TrajectoryFields } from './systems.js';

/** A simulated trajectory: its task (parameters and seed) and its frames, computed as they are pulled. */
export interface SimulatedTrajectory extends WellTrajectory {
  index: number;
  task: SimulationTask;
  frames: Iterable<{ fields: TrajectoryFields }>;
}

/** The tasks of trajectories 0..count-1 of one parameter set, seeded from `seed` and the set's file name. */
export function simulationTasks(template: TaskTemplate, count: number, seed: number): SimulationTask[] {
  const setSeed = trajectorySeed(seed, stringHash(taskFileStem({ ...template, seed: 0 } as SimulationTask)));
  return Array.from({ length: count }, (_, i) => ({ ...template, seed: trajectorySeed(setSeed, i) }) as SimulationTask);
}

/** FNV-1a hash of a string (32-bit). */
export function stringHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * Source: yields `count` trajectories of one system and parameter set, each with lazy frames simulated in this
 * thread as they are pulled (one solver and one frame held at a time). Deterministic for `seed`.
 *
 * ```ts
 * const euler = { system: 'euler', resolution: 64, gamma: 1.4, boundary: 'periodic', snapshots: 101, dt: 0.015 } as const;
 * await writeWell(simulate(euler, 10, 0), 'euler.hdf5', taskSpec({ ...euler, seed: 0 }));
 * ```
 */
export function simulate(
  template: TaskTemplate,
  count: number,
  seed: number,
): AsyncIterable<SimulatedTrajectory> {
  const tasks = simulationTasks(template, count, seed);
  return (async function* () {
    for (let index = 0; index < tasks.length; index++) {
      const task = tasks[index];
      yield {
        index,
        task,
        frames: {
          *[Symbol.iterator]() {
            for (const fields of taskFrames(task)) yield { fields };
          },
        },
      };
    }
  })();
}

/**
 * Stage: flattens simulated trajectories into their frames, `{ index, t, fields }`, one at a time (pulls the
 * next trajectory only when the current one is exhausted). Holds one frame.
 */
export function simulatedFrames(): Stage<SimulatedTrajectory, { trajectory: number; t: number; fields: TrajectoryFields }> {
  return named('simulatedFrames', async function* (source) {
    for await (const traj of source) {
      let t = 0;
      for (const frame of traj.frames) yield { trajectory: traj.index, t: t++, fields: frame.fields };
    }
  });
}
