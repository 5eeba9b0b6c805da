// JSON logs through winston: to stderr and, when configured, to a file. Components take a
// Logger and make child loggers that carry the job id, container id or image.
import winston from 'winston';

export type Logger = winston.Logger;

export function createLogger(level: string, file?: string, node?: string): Logger {
  const transports: winston.transport[] = [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] })];
  if (file) transports.push(new winston.transports.File({ filename: file }));
  return winston.createLogger({
    level,
    format: winston.format.combine(winston.format.timestamp(), winston.format.errors({ stack: false }), winston.format.json()),
    defaultMeta: node ? { node } : {},
    transports,
  });
}

/** A logger that drops everything, for unit tests. */
export function silentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}
