/**
 * VMware guestinfo network metadata (host-tools.md §1.9, coreos-cloudinit `network/vmware.go`):
 * `hostname`, `dns.server.X`, `dns.domain.Y`, `interface.N.{name,mac,dhcp,role}`,
 * `interface.N.ip.M.address`, `interface.N.route.L.{gateway,destination}`, read into Metadata and
 * into the `-convert-netconf vmware` networkd units `00-<name|mac>.network`.
 */
import { isIP } from 'node:net';
import { FlotillaError } from '../lib/errors.js';
import type { GuestInfo } from './guestinfo.js';
import type { Metadata } from './types.js';

export interface VmwareInterface {
  index: number;
  name?: string;
  mac?: string;
  dhcp?: boolean;
  role?: 'public' | 'private';
  addresses: string[];
  routes: { destination: string; gateway: string }[];
}

export interface VmwareNetwork {
  hostname?: string;
  dnsServers: string[];
  dnsDomains: string[];
  interfaces: VmwareInterface[];
}

function bad(key: string, message: string): never {
  throw new FlotillaError('E_DATASOURCE', `guestinfo.${key}: ${message}`, { field: `guestinfo.${key}` });
}

async function list(gi: GuestInfo, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; ; i++) {
    const v = await gi.get(`${prefix}.${i}`);
    if (v === undefined || v === '') return out;
    out.push(v);
  }
}

function cidrHost(key: string, cidr: string): string {
  const [ip, len, ...rest] = cidr.split('/');
  const fam = isIP(ip ?? '');
  const bits = Number(len);
  if (
    fam === 0 ||
    rest.length > 0 ||
    len === undefined ||
    !/^\d+$/.test(len) ||
    bits > (fam === 4 ? 32 : 128)
  ) {
    bad(key, `invalid CIDR address ${JSON.stringify(cidr)}`);
  }
  return ip!;
}

/** Read the network keys through `gi`; throws E_DATASOURCE naming the key on a bad value. */
export async function readVmwareNetwork(gi: GuestInfo): Promise<VmwareNetwork> {
  const get = async (k: string): Promise<string | undefined> => {
    const v = await gi.get(k);
    return v === undefined || v === '' ? undefined : v;
  };
  const [dnsServers, dnsDomains, hostname] = await Promise.all([
    list(gi, 'dns.server'),
    list(gi, 'dns.domain'),
    get('hostname'),
  ]);
  const net: VmwareNetwork = { dnsServers, dnsDomains, interfaces: [] };
  if (hostname !== undefined) net.hostname = hostname;
  for (let n = 0; ; n++) {
    const p = `interface.${n}`;
    const iface: VmwareInterface = { index: n, addresses: [], routes: [] };
    const [name, mac, dhcp, role] = await Promise.all(
      ['name', 'mac', 'dhcp', 'role'].map((f) => get(`${p}.${f}`)),
    );
    if (name !== undefined) iface.name = name;
    if (mac !== undefined) iface.mac = mac;
    if (dhcp !== undefined) {
      if (dhcp !== 'yes' && dhcp !== 'no') bad(`${p}.dhcp`, `invalid DHCP option: ${JSON.stringify(dhcp)}`);
      iface.dhcp = dhcp === 'yes';
    }
    for (let m = 0; ; m++) {
      const a = await get(`${p}.ip.${m}.address`);
      if (a === undefined) break;
      cidrHost(`${p}.ip.${m}.address`, a);
      iface.addresses.push(a);
    }
    for (let l = 0; ; l++) {
      const [gateway, destination] = await Promise.all([
        get(`${p}.route.${l}.gateway`),
        get(`${p}.route.${l}.destination`),
      ]);
      if (gateway === undefined && destination === undefined) break;
      if (gateway === undefined) bad(`${p}.route.${l}.gateway`, 'missing gateway key');
      if (destination === undefined) bad(`${p}.route.${l}.destination`, 'missing destination key');
      cidrHost(`${p}.route.${l}.destination`, destination);
      if (isIP(gateway) === 0)
        bad(`${p}.route.${l}.gateway`, `invalid gateway address ${JSON.stringify(gateway)}`);
      iface.routes.push({ destination, gateway });
    }
    if (
      name === undefined &&
      mac === undefined &&
      dhcp === undefined &&
      iface.addresses.length === 0 &&
      iface.routes.length === 0
    ) {
      break;
    }
    if (role !== undefined) {
      if (role !== 'public' && role !== 'private')
        bad(`${p}.role`, `unrecognized role: ${JSON.stringify(role)}`);
      iface.role = role;
    }
    net.interfaces.push(iface);
  }
  return net;
}

/** The Metadata fields the network keys give: hostname and public/private IPv4/IPv6 by role. */
export function networkMetadata(net: VmwareNetwork): Metadata {
  const md: Metadata = { sshPublicKeys: {} };
  if (net.hostname !== undefined) md.hostname = net.hostname;
  for (const i of net.interfaces) {
    const first = i.addresses[0];
    if (i.role === undefined || first === undefined) continue;
    const ip = first.split('/')[0]!;
    const v6 = isIP(ip) === 6;
    const field =
      i.role === 'public' ? (v6 ? 'publicIPv6' : 'publicIPv4') : v6 ? 'privateIPv6' : 'privateIPv4';
    md[field] ??= ip;
  }
  const units = networkUnits(net);
  if (units.length > 0) md.networkUnits = units;
  return md;
}

/**
 * The `-convert-netconf vmware` units: an interface with addresses or routes gets a static
 * `.network`; else `dhcp=yes` gives `DHCP=true`; else the scan stops. Named `00-<name|mac>.network`
 * (runtime units, for /run/systemd/network/).
 */
export function networkUnits(net: VmwareNetwork): { name: string; contents: string }[] {
  const out: { name: string; contents: string }[] = [];
  for (const i of net.interfaces) {
    const id = i.name ?? i.mac;
    if (id === undefined) continue;
    const match = ['[Match]'];
    if (i.name !== undefined) match.push(`Name=${i.name}`);
    if (i.mac !== undefined) match.push(`MACAddress=${i.mac}`);
    const sections = [match.join('\n')];
    if (i.addresses.length > 0 || i.routes.length > 0) {
      const network = ['[Network]'];
      if (net.dnsDomains.length > 0) network.push(`Domains=${net.dnsDomains.join(' ')}`);
      for (const s of net.dnsServers) network.push(`DNS=${s}`);
      sections.push(network.join('\n'));
      for (const a of i.addresses) sections.push(`[Address]\nAddress=${a}`);
      for (const r of i.routes) sections.push(`[Route]\nDestination=${r.destination}\nGateway=${r.gateway}`);
    } else if (i.dhcp === true) {
      sections.push('[Network]\nDHCP=true');
    } else {
      break;
    }
    out.push({
      name: `00-${id.replace(/[^A-Za-z0-9:._-]/g, '_')}.network`,
      contents: `${sections.join('\n\n')}\n`,
    });
  }
  return out;
}
