// Events: charts (units per state over time, failovers with duration) and the timeline.
import { h } from 'preact';
import { FailoverChart, StateChart } from '../charts.mjs';

const describe = (e) =>
  `${e.at.slice(11, 19)} ${e.kind}${e.action === 'delete' ? ' (gone)' : ''} ${e.name ?? e.id ?? e.machineID ?? ''} ${
    e.currentState ??
    e.desiredState ??
    e.reason ??
    (e.kind === 'schedule' ? (e.machineID?.slice(0, 8) ?? '') : '')
  }`;

export function Events({ s }) {
  return h('main', null, [
    h('h1', null, 'Events'),
    h('h2', null, 'Units per state'),
    h(StateChart, { samples: s.samples }),
    h('h2', null, 'Failovers'),
    h(FailoverChart, { failovers: s.failovers }),
    h('h2', null, 'Timeline'),
    h(
      'ol',
      { reversed: true, id: 'timeline' },
      s.events
        .slice(-200)
        .reverse()
        .map((e) =>
          h('li', { 'data-kind': e.kind, 'data-name': e.name ?? e.id ?? e.machineID ?? '' }, describe(e)),
        ),
    ),
  ]);
}
