/**
 * installLinks (pure): the [Install] rules systemctl enable follows: list values split on blanks,
 * an empty assignment resets the list, specifiers, templates with and without DefaultInstance,
 * instances, Also=, bad names refused.
 */
import { describe, expect, it } from 'vitest';
import { installLinks } from '../../../src/target/install.js';

const D = '/etc/systemd/system';

describe('installLinks', () => {
  it('splits lists, resets on an empty value, keeps order', () => {
    const text = '[Install]\nWantedBy=a.target b.target\nWantedBy=\nWantedBy=c.target\nRequiredBy=d.target\n';
    expect(installLinks('x.service', text, `${D}/x.service`, D)).toEqual({
      links: [
        { path: `${D}/c.target.wants/x.service`, target: `${D}/x.service` },
        { path: `${D}/d.target.requires/x.service`, target: `${D}/x.service` },
      ],
      also: [],
      empty: false,
    });
  });

  it('expands %n %N %p %i and %% for the enabled name', () => {
    const text = '[Install]\nWantedBy=%p-group@%i.target\nAlias=%N-alias.service\n';
    const info = installLinks('web@blue.service', text, `${D}/web@.service`, D);
    expect(info.links).toEqual([
      { path: `${D}/web@blue-alias.service`, target: `${D}/web@.service` },
      { path: `${D}/web-group@blue.target.wants/web@blue.service`, target: `${D}/web@.service` },
    ]);
  });

  it('a template without DefaultInstance gets no wants links; with one, the default instance', () => {
    expect(installLinks('t@.service', '[Install]\nWantedBy=m.target\n', `${D}/t@.service`, D).links).toEqual(
      [],
    );
    expect(
      installLinks('t@.service', '[Install]\nWantedBy=m.target\nDefaultInstance=one\n', `${D}/t@.service`, D)
        .links,
    ).toEqual([{ path: `${D}/m.target.wants/t@one.service`, target: `${D}/t@.service` }]);
  });

  it('no [Install] is empty; Also= names are returned; bad names are refused', () => {
    expect(installLinks('x.service', '[Service]\nExecStart=/bin/true\n', `${D}/x.service`, D).empty).toBe(
      true,
    );
    expect(installLinks('x.service', '[Install]\nAlso=y.socket z.timer\n', `${D}/x.service`, D).also).toEqual(
      ['y.socket', 'z.timer'],
    );
    expect(() => installLinks('x.service', '[Install]\nWantedBy=../../etc\n', `${D}/x.service`, D)).toThrow(
      /\[Install\] WantedBy=\.\.\/\.\.\/etc of x\.service/,
    );
  });
});
