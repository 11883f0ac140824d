/**
 * Owns: the resolved settings of the stage being deployed (`$app.stage`, read once) and the
 * prefix every named resource (alarms, dashboard, topic) starts with.
 * Differs by stage: everything in `stages.ts`; `WAF_*` variables add deploy-time facts.
 */
import { overridesFromEnv, resolveStage } from "./stages.ts";

export const settings = resolveStage($app.stage, overridesFromEnv(process.env));

/** `waf-event-processor-<stage>`: the prefix of every name an operator looks up. */
export const namePrefix = `${$app.name}-${$app.stage}`;
