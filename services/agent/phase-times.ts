// The phases of making a container, timed for its log line ("job container started",
// "step container started"): lap(NAME) is the time since the last lap; lap(NAME, MILLIS) a
// part measured apart (look-ups side by side).
export interface PhaseTimes {
  readonly phases: Record<string, number>;
  lap(name: string, millis?: number): void;
  /** the time since the timer began */
  elapsed(): number;
}

export function phaseTimes(now: () => number = Date.now): PhaseTimes {
  const began = now();
  const phases: Record<string, number> = {};
  let lapped = began;
  return {
    phases,
    lap(name, millis) {
      if (millis !== undefined) {
        phases[name] = millis;
        return;
      }
      const t = now();
      phases[name] = t - lapped;
      lapped = t;
    },
    elapsed: () => now() - began,
  };
}
