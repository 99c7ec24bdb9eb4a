/**
 * The engine: the pure scheduler (`planSchedule`) and the placement rules it shares with the agent.
 * The lease, the registry reads and the executor that applies decisions live elsewhere.
 */
export { planSchedule } from './scheduler.js';
export {
  conflictBetween,
  formatMetadata,
  machineIDMatches,
  metadataMatches,
  replacePattern,
  shortMachineID,
} from './constraints.js';
export type {
  EngineDecision,
  EngineDecisionType,
  PlacementRequirements,
  ScheduleInput,
  ScheduleSource,
  SchedulerJob,
} from './types.js';
