/**
 * The parsed [Container] section of each unit, cached per unit hash: prepare, install, decorate and
 * the events stream all ask "is this a container unit, and what is its spec?" many times a pass.
 * An invalid section is cached as its error (each ask throws it again, E_CONTAINER_SPEC).
 */
import { FlotillaError } from '../lib/errors.js';
import { UnitFile } from '../unit/index.js';
import { isContainerUnit, parseContainerSection, type ContainerSpec } from './spec.js';

export class SpecCache {
  private readonly specs = new Map<string, { hash: string; spec?: ContainerSpec; error?: string }>();

  /** The parsed [Container] section of a unit body (cached per hash); undefined for other units. */
  specOf(name: string, hash: string, body: string): ContainerSpec | undefined {
    const cached = this.specs.get(name);
    if (cached && cached.hash === hash) {
      if (cached.error !== undefined) throw new FlotillaError('E_CONTAINER_SPEC', cached.error);
      return cached.spec;
    }
    let file: UnitFile;
    try {
      file = UnitFile.parse(body);
    } catch {
      this.specs.set(name, { hash });
      return undefined; // not ours to judge: the install fails as it always did
    }
    if (!isContainerUnit(file)) {
      this.specs.set(name, { hash });
      return undefined;
    }
    try {
      const spec = parseContainerSection(name, file);
      this.specs.set(name, { hash, spec });
      return spec;
    } catch (err) {
      this.specs.set(name, { hash, error: (err as Error).message });
      throw err;
    }
  }

  /** The last valid spec seen for a unit (whatever its hash); undefined for other units. */
  cached(name: string): ContainerSpec | undefined {
    return this.specs.get(name)?.spec;
  }

  /** Units with a valid [Container] spec. */
  containerUnits(): string[] {
    return [...this.specs].filter(([, v]) => v.spec !== undefined).map(([k]) => k);
  }

  delete(name: string): void {
    this.specs.delete(name);
  }
}
