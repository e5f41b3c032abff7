// Administration (#/admin, role admin): people, targets (secrets are write-only: the form sends
// them, no list ever shows them), grants and API tokens.

import { get, post, del, query } from './api.js';
import { h, clear, fmtTime, table, errorBox } from './dom.js';

function form(id, title, fields, submitLabel, onSubmit) {
  const err = h('p.error.hidden', { role: 'alert' });
  const ok = h('p.notice.hidden', { role: 'status' });
  const btn = h('button.primary', { type: 'submit' }, submitLabel);
  const el = h('form.admin-form', {
    id,
    onsubmit: async (ev) => {
      ev.preventDefault();
      err.classList.add('hidden');
      ok.classList.add('hidden');
      btn.disabled = true;
      try {
        const msg = await onSubmit(el);
        if (msg) { ok.textContent = msg; ok.classList.remove('hidden'); }
      } catch (e) {
        err.textContent = e.message;
        err.classList.remove('hidden');
      } finally {
        btn.disabled = false;
      }
    },
  }, h('h3', title), h('div.filter-row', fields, btn), err, ok);
  return el;
}

const input = (name, props = {}) => h('label', props.label || name, h('input', { name, autocomplete: 'off', ...props, label: undefined }));

export async function adminView(main, ctx) {
  if (!ctx.can('admin')) {
    main.append(h('div.error', { role: 'alert', dataset: { status: '403' } }, 'Only an admin manages people, targets and grants.'));
    return null;
  }
  const people = h('section', { id: 'admin-people' });
  const targets = h('section', { id: 'admin-targets' });
  const grants = h('section', { id: 'admin-grants' });
  main.append(h('div.page-head', h('h1', 'Administration')), people, targets, grants);

  const val = (f, n) => f.elements[n].value.trim();
  async function load() {
    const [p, t, g] = await Promise.all([get('/people'), get('/targets'), get('/grants')]);
    if (!ctx.isCurrent()) return;
    clear(people).append(h('h2', 'People'),
      table(p, [['Name', (x) => x.name], ['Role', (x) => x.role],
        ['Password', (x) => (x.has_password === undefined ? '' : x.has_password ? 'set' : '—')],
        ['SSH keys', (x) => (x.ssh_keys ?? x.keys ?? '')],
        ['Created', (x) => fmtTime(x.created_at)]], { empty: 'No people.', rowProps: (x) => ({ class: 'person-row', dataset: { name: x.name } }) }),
      form('add-person', 'Add a person', [
        input('name', { required: true }),
        h('label', 'role', h('select', { name: 'role' }, ['user', 'auditor', 'admin'].map((r) => h('option', { value: r }, r)))),
        input('password', { type: 'password', autocomplete: 'new-password' }),
        input('ssh_key', { label: 'SSH public key', placeholder: 'ssh-ed25519 AAAA…' }),
      ], 'Add', async (f) => {
        const body = { name: val(f, 'name'), role: f.elements.role.value };
        if (f.elements.password.value) body.password = f.elements.password.value;
        if (val(f, 'ssh_key')) body.ssh_key = val(f, 'ssh_key');
        await post('/people', body);
        await load();
        return `Added ${body.name}.`;
      }),
      // A user token acts for one person (it sees only their sessions); the API refuses one
      // without a person.
      form('create-token', 'API token', [
        input('name', { required: true, placeholder: 'automation name' }),
        h('label', 'role', h('select', { name: 'role' }, ['auditor', 'user', 'admin'].map((r) => h('option', { value: r }, r)))),
        h('label', 'acts for (user role)', h('select', { name: 'person' },
          h('option', { value: '' }, '—'), p.map((x) => h('option', { value: x.name }, x.name)))),
      ], 'Create token', async (f) => {
        const body = { name: val(f, 'name'), role: f.elements.role.value };
        if (f.elements.person.value) body.person = f.elements.person.value;
        const r = await post('/tokens', body);
        return `Token (shown once, copy it now): ${r.token}`;
      }));
    clear(targets).append(h('h2', 'Targets'),
      table(t, [['Name', (x) => x.name], ['Host', (x) => `${x.host}:${x.port ?? 22}`], ['Login', (x) => x.login],
        ['Credential', (x) => `${x.secret_kind || 'secret'} (vaulted, write-only)`],
        ['Host key', (x) => (x.host_key ? h('code.hash', { title: x.host_key }, `${x.host_key.slice(0, 28)}…`)
          : h('span.muted', x.trust_on_first_use ? 'pinned on first use' : '—'))]],
      { empty: 'No targets.', rowProps: (x) => ({ class: 'target-row', dataset: { target: x.name } }) }),
      // The API takes a password (key logins and algorithms: `keepwatch target add`) and
      // either the target's host key or an explicit choice to trust the first one it shows.
      form('add-target', 'Add a target (the password is stored encrypted and never shown again)', [
        input('name', { required: true }), input('host', { required: true }),
        input('port', { type: 'number', value: '22', min: 1, max: 65535 }), input('login', { required: true }),
        input('password', { type: 'password', autocomplete: 'new-password', required: true }),
        input('host_key', { label: 'host key (ssh-keyscan -t ed25519 HOST)', placeholder: 'ssh-ed25519 AAAA…' }),
        h('label.inline', h('input', { type: 'checkbox', name: 'trust_on_first_use' }), 'no key: trust the first one it shows'),
      ], 'Add', async (f) => {
        const body = {
          name: val(f, 'name'), host: val(f, 'host'), port: Number(val(f, 'port') || 22), login: val(f, 'login'),
          password: f.elements.password.value,
        };
        if (val(f, 'host_key')) body.host_key = val(f, 'host_key');
        if (f.elements.trust_on_first_use.checked) body.trust_on_first_use = true;
        await post('/targets', body);
        f.elements.password.value = '';
        await load();
        return `Added ${body.name}.`;
      }));
    clear(grants).append(h('h2', 'Grants'),
      table(g, [['Person', (x) => x.user], ['Target', (x) => x.target],
        ['', (x) => h('button.danger.small', {
          type: 'button',
          onclick: async (ev) => {
            ev.target.disabled = true;
            try {
              await del(`/grants${query({ user: x.user, target: x.target })}`);
              await load();
            } catch (e) {
              grants.append(errorBox(e));
            }
          },
        }, 'Revoke')]], { empty: 'No grants.', rowProps: (x) => ({ class: 'grant-row', dataset: { user: x.user, target: x.target } }) }),
      form('add-grant', 'Grant a target', [
        h('label', 'person', h('select', { name: 'user' }, p.map((x) => h('option', { value: x.name }, x.name)))),
        h('label', 'target', h('select', { name: 'target' }, t.map((x) => h('option', { value: x.name }, x.name)))),
      ], 'Grant', async (f) => {
        await post('/grants', { user: f.elements.user.value, target: f.elements.target.value });
        await load();
        return 'Granted.';
      }));
  }
  try {
    await load();
  } catch (e) {
    if (ctx.isCurrent()) main.append(errorBox(e));
  }
  return null;
}
