/**
 * `GET /fleet/v1/discovery`: the Google API Discovery document of fleet's v1 API (what fleet served
 * from schema/v1.json and its generated Go client was built from): id `fleet:v1`, `rootUrl` with
 * fleet's literal `$ENDPOINT` placeholder, the Machine/Unit/UnitState schemas and their methods.
 * Written out here (not copied) from the shapes fleet-v1.ts serves; Machines.Patch is included.
 */

const str = { type: 'string' } as const;
const token = { nextPageToken: { type: 'string', location: 'query' } } as const;
const unitName = { unitName: { type: 'string', location: 'path', required: true } } as const;
const states = { type: 'string', enum: ['inactive', 'loaded', 'launched'] } as const;
const page = (item: string, field: string) => ({
  id: `${item}Page`,
  type: 'object',
  properties: { [field]: { type: 'array', items: { $ref: item } }, nextPageToken: str },
});

export const DISCOVERY = {
  kind: 'discovery#restDescription',
  discoveryVersion: 'v1',
  id: 'fleet:v1',
  name: 'schema',
  version: 'v1',
  title: 'fleet API',
  description: '',
  documentationLink: 'http://github.com/coreos/fleet',
  protocol: 'rest',
  icons: { x16: '', x32: '' },
  labels: [],
  baseUrl: '$ENDPOINT/fleet/v1/',
  basePath: '/fleet/v1/',
  rootUrl: '$ENDPOINT/',
  servicePath: 'fleet/v1/',
  batchPath: 'batch',
  parameters: {},
  auth: {},
  schemas: {
    Machine: {
      id: 'Machine',
      type: 'object',
      properties: {
        id: str,
        primaryIP: str,
        metadata: { type: 'object', properties: {}, additionalProperties: str },
      },
    },
    MachinePage: page('Machine', 'machines'),
    UnitOption: {
      id: 'UnitOption',
      type: 'object',
      properties: { section: str, name: str, value: str },
    },
    Unit: {
      id: 'Unit',
      type: 'object',
      properties: {
        name: str,
        options: { type: 'array', items: { $ref: 'UnitOption' } },
        desiredState: states,
        currentState: states,
        machineID: { type: 'string', required: true },
      },
    },
    UnitPage: page('Unit', 'units'),
    UnitState: {
      id: 'UnitState',
      type: 'object',
      properties: {
        name: str,
        hash: str,
        machineID: str,
        systemdLoadState: str,
        systemdActiveState: str,
        systemdSubState: str,
      },
    },
    UnitStatePage: page('UnitState', 'states'),
  },
  resources: {
    Machines: {
      methods: {
        List: {
          id: 'fleet.Machine.List',
          description: 'Retrieve a page of Machine objects.',
          httpMethod: 'GET',
          path: 'machines',
          parameters: token,
          response: { $ref: 'MachinePage' },
        },
        Patch: {
          id: 'fleet.Machine.Patch',
          description: 'Add, replace or remove machine metadata.',
          httpMethod: 'PATCH',
          path: 'machines',
        },
      },
    },
    Units: {
      methods: {
        List: {
          id: 'fleet.Unit.List',
          description: 'Retrieve a page of Unit objects.',
          httpMethod: 'GET',
          path: 'units',
          parameters: token,
          response: { $ref: 'UnitPage' },
        },
        Get: {
          id: 'fleet.Unit.Get',
          description: 'Retrieve a single Unit object.',
          httpMethod: 'GET',
          path: 'units/{unitName}',
          parameters: unitName,
          parameterOrder: ['unitName'],
          response: { $ref: 'Unit' },
        },
        Delete: {
          id: 'fleet.Unit.Delete',
          description: 'Delete the referenced Unit object.',
          httpMethod: 'DELETE',
          path: 'units/{unitName}',
          parameters: unitName,
          parameterOrder: ['unitName'],
        },
        Set: {
          id: 'fleet.Unit.Set',
          description: 'Create or update a Unit.',
          httpMethod: 'PUT',
          path: 'units/{unitName}',
          parameters: unitName,
          parameterOrder: ['unitName'],
          request: { $ref: 'Unit' },
        },
      },
    },
    UnitState: {
      methods: {
        Get: {
          id: 'fleet.UnitState.Get',
          description: 'Retrieve the state of a single unit.',
          httpMethod: 'GET',
          path: 'state/{unitName}',
          parameters: unitName,
          parameterOrder: ['unitName'],
          response: { $ref: 'UnitState' },
        },
        List: {
          id: 'fleet.UnitState.List',
          description: 'Retrieve a page of UnitState objects.',
          httpMethod: 'GET',
          path: 'state',
          parameters: {
            ...token,
            unitName: { type: 'string', location: 'query' },
            machineID: { type: 'string', location: 'query' },
          },
          response: { $ref: 'UnitStatePage' },
        },
      },
    },
  },
};
