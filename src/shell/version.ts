/** The version the CLI reports and sends as its User-Agent. */
export const VERSION = '0.1.0';
