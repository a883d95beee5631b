/** Sources and transform stages: the stage core, general-purpose operators, Well readers and simulators. */
export * from './core.js';
export * from './well/index.js';
export * from './simulate/index.js';
