//! Engine plugins: loading a shared object by path, checking its table
//! against the plugin ABI, and driving the engine it creates.
//!
//! The checks follow two long-lived plugin systems: the table starts with the
//! ABI version it was built for, refused when its major version differs
//! (Suricata's `SCPluginRegister` version check), and with its own `sizeof`,
//! so that a table that grew in a later minor version is read up to the
//! members this bridge knows and a smaller one is refused when it lacks
//! required members (OBS's `sizeof` on registration).
//!
//! Every way a plugin can be wrong gives a [`PluginError`]: an `EvbStatus`
//! and one sentence naming the file and the fault. Nothing here trusts a
//! plugin beyond what the ABI obliges it to: tables are copied by their
//! declared size, strings are read only when non-NULL, kinds, sources and
//! counters are validated before anything uses them, and every call's
//! return value is checked. (A plugin that crashes or writes out of bounds
//! cannot be stopped from inside the process; that is the limit of an
//! in-process ABI.)
//!
//! Threading: an [`Engine`] is used from one control thread at a time; its
//! methods take `&mut self`.

use crate::abi::{
    EvbConfig, EvbEventCallback, EvbHost, EvbPlugin, EvbPluginCounter, EvbPluginEntry, EvbPluginKind, EvbPluginSource,
    EvbStatus, EVB_KIND_MAX, EVB_KIND_NAME_MAX, EVB_PLUGIN_ABI_MAJOR, EVB_PLUGIN_ABI_VERSION, EVB_PLUGIN_ENTRY,
    EVB_PLUGIN_REQUIRED_SIZE,
};
use crate::panic::ffi_boundary;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};

/// Why a plugin could not be loaded or driven: a status and a message for
/// operators that names the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// The status code (one of the `Plugin*`, `BadState`, `Unsupported`).
    pub status: EvbStatus,
    /// One sentence naming the file and the fault.
    pub message: String,
}

fn err(status: EvbStatus, message: String) -> PluginError {
    PluginError { status, message }
}

/// Bytes of error message a plugin's `create` may write.
const CREATE_ERR_CAP: usize = 512;

/// Reads a plugin-owned C string, or `None` for NULL.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string (the plugin ABI's
/// obligation for every string member).
unsafe fn plugin_str(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// Whether `s` is a kind name: 1 to 32 bytes of `[a-z0-9_]`.
pub fn valid_kind_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= EVB_KIND_NAME_MAX as usize
        && s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

/// Whether `s` is an engine counter name: `[a-z][a-z0-9_]*`, at most 64
/// bytes, ending in `_total` (Prometheus counter naming).
pub fn valid_counter_name(s: &str) -> bool {
    s.len() <= 64
        && s.ends_with("_total")
        && s.bytes().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

/// A loaded plugin: the library (kept open while any engine of it lives) and
/// a copy of its table.
pub struct Plugin {
    // Field order matters: the table's function pointers point into `_lib`,
    // which is dropped (unloaded) last.
    table: EvbPlugin,
    path: PathBuf,
    name: String,
    version: String,
    _lib: libloading::os::unix::Library,
}

// SAFETY: the table holds function pointers and pointers to static strings
// of the loaded library, which are valid on every thread while `lib` is
// loaded; the plugin ABI makes each member's threading rule explicit.
unsafe impl Send for Plugin {}

impl Plugin {
    /// Loads the shared object at `path` and checks its table.
    ///
    /// # Errors
    /// `PluginNotFound` (missing, or a directory), `PluginNotShared`
    /// (dlopen refused it), `PluginNoEntry` (no `evb_plugin_entry`, or NULL
    /// from it), `PluginAbi` (another major version), `PluginTable` (too
    /// small, or a required member NULL).
    pub fn load(path: &Path) -> Result<Plugin, PluginError> {
        let shown = path.display();
        match std::fs::metadata(path) {
            Err(e) => return Err(err(EvbStatus::PluginNotFound, format!("Engine plugin {shown} cannot be read: {e}."))),
            Ok(m) if m.is_dir() => {
                return Err(err(EvbStatus::PluginNotFound, format!("Engine plugin {shown} is a directory, not a shared object.")))
            }
            Ok(_) => {}
        }
        // RTLD_NOW: a plugin with an unresolved symbol fails here, with the
        // linker's message, instead of crashing at its first call.
        // SAFETY: loading a library runs its initialisers; choosing which
        // library to load is the operator's decision (the `engine.plugin`
        // path), as with any plugin system.
        let lib = unsafe {
            libloading::os::unix::Library::open(Some(path), libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL)
        }
        .map_err(|e| err(EvbStatus::PluginNotShared, format!("Engine plugin {shown} is not a loadable shared object: {e}.")))?;
        // SAFETY: the symbol's type is the plugin ABI's entry point type.
        let entry: EvbPluginEntry = unsafe { lib.get::<EvbPluginEntry>(EVB_PLUGIN_ENTRY.as_bytes()) }
            .map(|s| *s)
            .map_err(|_| {
                err(
                    EvbStatus::PluginNoEntry,
                    format!("Engine plugin {shown} does not export {EVB_PLUGIN_ENTRY}(): it is not an evbridge engine plugin."),
                )
            })?;
        // SAFETY: calling the entry point the plugin exports under the ABI's name and type.
        let raw = unsafe { entry() };
        if raw.is_null() {
            return Err(err(EvbStatus::PluginNoEntry, format!("Engine plugin {shown}: {EVB_PLUGIN_ENTRY}() returned NULL.")));
        }
        // SAFETY: a non-NULL table starts with its two u32 version and size
        // members (the one layout fact every version of the ABI shares).
        let (abi, size) = unsafe { ((*raw).abi_version, (*raw).size) };
        if abi >> 16 != EVB_PLUGIN_ABI_MAJOR {
            return Err(err(
                EvbStatus::PluginAbi,
                format!(
                    "Engine plugin {shown} was built for plugin ABI {}.{}; this bridge loads plugin ABI {}.x. Rebuild the plugin against native/include/evb_plugin.h.",
                    abi >> 16,
                    abi & 0xffff,
                    EVB_PLUGIN_ABI_MAJOR
                ),
            ));
        }
        if size < EVB_PLUGIN_REQUIRED_SIZE {
            return Err(err(
                EvbStatus::PluginTable,
                format!(
                    "Engine plugin {shown} declares a table of {size} bytes; plugin ABI {}.x requires at least {EVB_PLUGIN_REQUIRED_SIZE} (through strerror).",
                    EVB_PLUGIN_ABI_MAJOR
                ),
            ));
        }
        let known = std::mem::size_of::<EvbPlugin>().min(size as usize);
        let mut table = std::mem::MaybeUninit::<EvbPlugin>::zeroed();
        // SAFETY: the plugin declares `size` readable bytes at `raw`; we copy
        // at most that many, and at most our own size, into zeroed storage.
        // All-zero bytes are a valid EvbPlugin (integers, NULL pointers and
        // `None` function pointers), so members beyond `size` read as absent.
        let table = unsafe {
            std::ptr::copy_nonoverlapping(raw.cast::<u8>(), table.as_mut_ptr().cast::<u8>(), known);
            table.assume_init()
        };
        let required: [(&str, bool); 8] = [
            ("create", table.create.is_some()),
            ("kinds", table.kinds.is_some()),
            ("register_callback", table.register_callback.is_some()),
            ("unregister_callback", table.unregister_callback.is_some()),
            ("start", table.start.is_some()),
            ("stop", table.stop.is_some()),
            ("free", table.free.is_some()),
            ("strerror", table.strerror.is_some()),
        ];
        if let Some((member, _)) = required.iter().find(|(_, present)| !present) {
            return Err(err(EvbStatus::PluginTable, format!("Engine plugin {shown}: required member {member} is NULL.")));
        }
        // SAFETY: string members are NULL or static NUL-terminated strings.
        let (name, version) = unsafe { (plugin_str(table.name), plugin_str(table.version)) };
        Ok(Plugin {
            table,
            path: path.to_owned(),
            name: name.unwrap_or_else(|| "unnamed".to_owned()),
            version: version.unwrap_or_else(|| "unknown".to_owned()),
            _lib: lib,
        })
    }

    fn strerror(&self, rc: c_int) -> String {
        let f = self.table.strerror.expect("checked at load");
        // SAFETY: required member; returns a static string or NULL.
        unsafe { plugin_str(f(rc)) }.unwrap_or_else(|| format!("error {rc}"))
    }
}

/// The configuration a plugin reads through the host accessors: the parsed
/// `engine.config` block, the NUL-terminated copies of strings handed out,
/// and the paths the plugin asked for.
struct HostConfig {
    value: Value,
    strings: RefCell<Vec<CString>>,
    asked: RefCell<BTreeSet<String>>,
}

impl HostConfig {
    fn lookup(&self, path: &str) -> Option<&Value> {
        self.asked.borrow_mut().insert(path.to_owned());
        let mut v = &self.value;
        for token in path.split('.') {
            v = match v {
                Value::Object(m) => m.get(token)?,
                Value::Array(a) => a.get(token.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(v)
    }

    /// Leaf paths present in the configuration that the plugin never asked
    /// for, nor any of their parents or children.
    fn unused(&self) -> Vec<String> {
        fn walk(v: &Value, prefix: String, out: &mut Vec<String>) {
            match v {
                Value::Object(m) if !m.is_empty() => {
                    for (k, c) in m {
                        walk(c, if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, out);
                    }
                }
                _ => out.push(prefix),
            }
        }
        let mut leaves = Vec::new();
        walk(&self.value, String::new(), &mut leaves);
        let asked = self.asked.borrow();
        leaves
            .into_iter()
            .filter(|leaf| {
                !leaf.is_empty()
                    && !asked.iter().any(|a| {
                        a == leaf || leaf.starts_with(&format!("{a}.")) || a.starts_with(&format!("{leaf}."))
                    })
            })
            .collect()
    }
}

/// # Safety
/// `cfg` is the `EvbConfig` pointer handed to `create` (a `HostConfig`),
/// still inside that call; `path` is a NUL-terminated string.
unsafe fn host_lookup<'a>(cfg: *const EvbConfig, path: *const c_char) -> Option<(&'a HostConfig, Option<&'a Value>)> {
    if cfg.is_null() || path.is_null() {
        return None;
    }
    // SAFETY: per the contract, `cfg` points at the live HostConfig.
    let hc = unsafe { &*cfg.cast::<HostConfig>() };
    // SAFETY: NUL-terminated per the contract.
    let p = unsafe { CStr::from_ptr(path) }.to_str().ok()?;
    Some((hc, hc.lookup(p)))
}

unsafe extern "C" fn host_config_string(cfg: *const EvbConfig, path: *const c_char, out: *mut *const c_char, len: *mut usize) -> c_int {
    ffi_boundary!({
        // SAFETY: forwarded contract of the host table (valid during create).
        let Some((hc, found)) = (unsafe { host_lookup(cfg, path) }) else { return -1 };
        match found {
            None => 0,
            Some(Value::String(s)) => {
                let Ok(c) = CString::new(s.as_bytes()) else { return -1 };
                let p = c.as_ptr();
                hc.strings.borrow_mut().push(c); // kept alive until create returns
                if !out.is_null() {
                    // SAFETY: non-NULL out pointer supplied by the plugin.
                    unsafe { *out = p };
                }
                if !len.is_null() {
                    // SAFETY: as above.
                    unsafe { *len = s.len() };
                }
                1
            }
            Some(_) => -1,
        }
    })
}

unsafe extern "C" fn host_config_number(cfg: *const EvbConfig, path: *const c_char, out: *mut f64) -> c_int {
    ffi_boundary!({
        // SAFETY: forwarded contract of the host table.
        let Some((_, found)) = (unsafe { host_lookup(cfg, path) }) else { return -1 };
        match found.map(Value::as_f64) {
            None => 0,
            Some(Some(n)) if !out.is_null() => {
                // SAFETY: non-NULL out pointer supplied by the plugin.
                unsafe { *out = n };
                1
            }
            Some(_) => -1,
        }
    })
}

unsafe extern "C" fn host_config_bool(cfg: *const EvbConfig, path: *const c_char, out: *mut c_int) -> c_int {
    ffi_boundary!({
        // SAFETY: forwarded contract of the host table.
        let Some((_, found)) = (unsafe { host_lookup(cfg, path) }) else { return -1 };
        match found.map(Value::as_bool) {
            None => 0,
            Some(Some(b)) if !out.is_null() => {
                // SAFETY: non-NULL out pointer supplied by the plugin.
                unsafe { *out = c_int::from(b) };
                1
            }
            Some(_) => -1,
        }
    })
}

unsafe extern "C" fn host_config_length(cfg: *const EvbConfig, path: *const c_char, out: *mut usize) -> c_int {
    ffi_boundary!({
        // SAFETY: forwarded contract of the host table.
        let Some((_, found)) = (unsafe { host_lookup(cfg, path) }) else { return -1 };
        match found {
            None => 0,
            Some(Value::Array(a)) if !out.is_null() => {
                // SAFETY: non-NULL out pointer supplied by the plugin.
                unsafe { *out = a.len() };
                1
            }
            Some(_) => -1,
        }
    })
}

unsafe extern "C" fn host_subject_valid(s: *const c_char, len: usize) -> c_int {
    ffi_boundary!({
        if s.is_null() || len > crate::abi::EVB_SUBJECT_MAX as usize {
            return 0;
        }
        // SAFETY: the plugin passes `len` readable bytes (the member's contract).
        let bytes = unsafe { std::slice::from_raw_parts(s.cast::<u8>(), len) };
        c_int::from(crate::bridge::valid_subject(bytes))
    })
}

/// The host table handed to every plugin's `create`; static, so plugins may
/// keep it.
static HOST: EvbHost = EvbHost {
    size: std::mem::size_of::<EvbHost>() as u32,
    config_string: Some(host_config_string),
    config_number: Some(host_config_number),
    config_bool: Some(host_config_bool),
    config_length: Some(host_config_length),
    subject_valid: Some(host_subject_valid),
};

/// One kind an engine declared, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kind {
    /// Kind number (0 to 31).
    pub number: u32,
    /// Kind name (`[a-z0-9_]`, 1 to 32 bytes).
    pub name: String,
}

/// An engine made by a plugin's `create`, with the registration of a
/// bridge's callback when attached.
pub struct Engine {
    plugin: Plugin,
    handle: *mut c_void,
    kinds: Vec<Kind>,
    counter_names: Vec<String>,
    counter_values: Box<[u64]>,
    describe: CString,
    running: bool,
    /// (registration id, token) of the attached bridge's callback.
    registration: Option<(i64, usize)>,
}

// SAFETY: the engine handle is the plugin's, used under the plugin ABI's
// "control thread" rule, which `&mut self` on every method enforces.
unsafe impl Send for Engine {}

impl Engine {
    /// Creates an engine from `plugin` with its configuration block
    /// (`config_json`, any JSON value), reads and checks its kinds, sources
    /// and counters.
    ///
    /// # Errors
    /// `PluginCreate` when the JSON does not parse or `create` refuses it
    /// (with the plugin's own message), `PluginDescribe` when what it
    /// declares breaks the rules.
    pub fn create(plugin: Plugin, config_json: &str) -> Result<Engine, PluginError> {
        let shown = plugin.path.display().to_string();
        let value: Value = serde_json::from_str(config_json)
            .map_err(|e| err(EvbStatus::PluginCreate, format!("Engine plugin {shown}: its configuration is not JSON: {e}.")))?;
        let hc = HostConfig { value, strings: RefCell::new(Vec::new()), asked: RefCell::new(BTreeSet::new()) };
        let mut handle: *mut c_void = std::ptr::null_mut();
        let mut msg = [0 as c_char; CREATE_ERR_CAP];
        let create = plugin.table.create.expect("checked at load");
        // SAFETY: required member called per its contract: host and cfg are
        // valid for the call, config_json is valid for config_len bytes, the
        // out pointer and message buffer are ours.
        let rc = unsafe {
            create(
                &HOST,
                (&hc as *const HostConfig).cast::<EvbConfig>(),
                config_json.as_ptr().cast::<c_char>(),
                config_json.len(),
                &mut handle,
                msg.as_mut_ptr(),
                CREATE_ERR_CAP,
            )
        };
        msg[CREATE_ERR_CAP - 1] = 0; // a plugin that fills the buffer still ends it
        if rc != 0 || handle.is_null() {
            // SAFETY: zero-initialised and NUL-terminated above.
            let own = unsafe { CStr::from_ptr(msg.as_ptr()) }.to_string_lossy().into_owned();
            let why = if rc == 0 { "create returned 0 without an engine".to_owned() } else { plugin.strerror(rc) };
            let detail = if own.is_empty() { why } else { format!("{own} ({why})") };
            return Err(err(EvbStatus::PluginCreate, format!("Engine plugin {shown} refused its configuration: {detail}.")));
        }
        let unused = hc.unused();
        drop(hc);
        let mut engine = Engine {
            plugin,
            handle,
            kinds: Vec::new(),
            counter_names: Vec::new(),
            counter_values: Box::new([]),
            describe: CString::default(),
            running: false,
            registration: None,
        };
        // On error, dropping `engine` frees the plugin's engine.
        engine.read_description(&shown, unused)?;
        Ok(engine)
    }

    fn read_description(&mut self, shown: &str, unused: Vec<String>) -> Result<(), PluginError> {
        let t = self.plugin.table;
        let bad = |what: String| err(EvbStatus::PluginDescribe, format!("Engine plugin {shown}: {what}."));
        let mut kp: *const EvbPluginKind = std::ptr::null();
        // SAFETY: required member, called with our engine and out pointer.
        let n = unsafe { (t.kinds.expect("checked at load"))(self.handle, &mut kp) } as usize;
        if n == 0 || n > (EVB_KIND_MAX + 1) as usize || kp.is_null() {
            return Err(bad(format!("it declares {n} kinds; 1 to {} are allowed", EVB_KIND_MAX + 1)));
        }
        // SAFETY: the plugin returned an array of n kinds, valid until free.
        let raw = unsafe { std::slice::from_raw_parts(kp, n) };
        for k in raw {
            // SAFETY: a kind's name is NULL or NUL-terminated.
            let name = unsafe { plugin_str(k.name) }.unwrap_or_default();
            if k.number > EVB_KIND_MAX || !valid_kind_name(&name) {
                return Err(bad(format!(
                    "kind {} \"{name}\" breaks the rules (numbers 0 to {EVB_KIND_MAX}, names of 1 to {EVB_KIND_NAME_MAX} characters [a-z0-9_])",
                    k.number
                )));
            }
            if self.kinds.iter().any(|o| o.number == k.number || o.name == name) {
                return Err(bad(format!("kind {} \"{name}\" repeats a number or a name", k.number)));
            }
            self.kinds.push(Kind { number: k.number, name });
        }
        let mut sources = Vec::new();
        if let Some(f) = t.sources {
            let mut sp: *const EvbPluginSource = std::ptr::null();
            // SAFETY: optional member present; same calling contract as kinds.
            let n = unsafe { f(self.handle, &mut sp) } as usize;
            if n > 0 && sp.is_null() {
                return Err(bad(format!("it describes {n} sources but returns no array")));
            }
            if n > 0 {
                // SAFETY: an array of n sources, valid until free.
                for s in unsafe { std::slice::from_raw_parts(sp, n) } {
                    let Some(kind) = self.kinds.iter().find(|k| k.number == s.kind) else {
                        return Err(bad(format!("source {} has kind {}, which it did not declare", s.id, s.kind)));
                    };
                    // SAFETY: NULL or NUL-terminated strings.
                    let (name, detail) = unsafe { (plugin_str(s.name), plugin_str(s.detail)) };
                    sources.push(serde_json::json!({
                        "id": s.id, "kind": kind.name, "name": name.unwrap_or_default(), "detail": detail.unwrap_or_default()
                    }));
                }
            }
        }
        if let Some(f) = t.counters {
            let mut cp: *const EvbPluginCounter = std::ptr::null();
            // SAFETY: optional member present; same calling contract.
            let n = unsafe { f(self.handle, &mut cp) } as usize;
            if n > 256 || (n > 0 && cp.is_null()) {
                return Err(bad(format!("it declares {n} counters (at most 256, with an array)")));
            }
            if n > 0 {
                // SAFETY: an array of n counters, valid until free.
                for c in unsafe { std::slice::from_raw_parts(cp, n) } {
                    // SAFETY: NULL or NUL-terminated strings.
                    let name = unsafe { plugin_str(c.name) }.unwrap_or_default();
                    if !valid_counter_name(&name) || self.counter_names.contains(&name) {
                        return Err(bad(format!(
                            "counter \"{name}\" is not a unique name of [a-z0-9_] of at most 64 bytes ending in _total"
                        )));
                    }
                    self.counter_names.push(name);
                }
            }
        }
        self.counter_values = vec![0; self.counter_names.len()].into_boxed_slice();
        let counters: Vec<Value> = if let Some(f) = t.counters {
            let mut cp: *const EvbPluginCounter = std::ptr::null();
            // SAFETY: as above; the array is the same one.
            let n = unsafe { f(self.handle, &mut cp) } as usize;
            (0..n.min(self.counter_names.len()))
                .map(|i| {
                    // SAFETY: i < n, the array's length.
                    let c = unsafe { &*cp.add(i) };
                    // SAFETY: NULL or NUL-terminated.
                    let help = unsafe { plugin_str(c.help) }.unwrap_or_default();
                    serde_json::json!({ "name": self.counter_names[i], "help": help })
                })
                .collect()
        } else {
            Vec::new()
        };
        let d = serde_json::json!({
            "path": shown,
            "name": self.plugin.name,
            "version": self.plugin.version,
            "abi_version": format!("{}.{}", self.plugin.table.abi_version >> 16, self.plugin.table.abi_version & 0xffff),
            "host_abi_version": format!("{}.{}", EVB_PLUGIN_ABI_VERSION >> 16, EVB_PLUGIN_ABI_VERSION & 0xffff),
            "kinds": self.kinds.iter().map(|k| serde_json::json!({ "name": k.name, "number": k.number })).collect::<Vec<_>>(),
            "sources": sources,
            "counters": counters,
            "debug": t.debug.is_some(),
            "unused_config_keys": unused,
        });
        self.describe = CString::new(d.to_string()).expect("JSON text has no NUL byte");
        Ok(())
    }

    /// The engine's description as JSON (path, name, version, kinds,
    /// sources, counter names, unused configuration keys). Stable until the
    /// engine is dropped.
    pub fn describe(&self) -> &CStr {
        &self.describe
    }

    /// The bit mask of the declared kinds.
    pub fn kind_mask(&self) -> u32 {
        self.kinds.iter().fold(0, |m, k| m | 1 << k.number)
    }

    fn call_error(&self, what: &str, rc: i64) -> PluginError {
        let msg = self.plugin.strerror(rc.clamp(i64::from(c_int::MIN), i64::from(c_int::MAX)) as c_int);
        err(EvbStatus::PluginCall, format!("Engine plugin {}: {what} failed: {msg} ({rc}).", self.plugin.path.display()))
    }

    /// Registers `cb` with `token` as its userdata for every declared kind.
    ///
    /// # Errors
    /// `BadState` when already attached; `PluginCall` when the plugin refuses.
    pub fn attach(&mut self, cb: EvbEventCallback, token: usize) -> Result<(), PluginError> {
        if self.registration.is_some() {
            return Err(err(EvbStatus::BadState, "the engine is already attached to a bridge".to_owned()));
        }
        let f = self.plugin.table.register_callback.expect("checked at load");
        // SAFETY: required member; the token is opaque to the plugin.
        let id = unsafe { f(self.handle, cb, token as *mut c_void, self.kind_mask()) };
        if id <= 0 {
            return Err(self.call_error("register_callback", id));
        }
        self.registration = Some((id, token));
        Ok(())
    }

    /// Removes the registration made by [`Engine::attach`]; the plugin
    /// guarantees no call is in flight when this returns. Returns the token,
    /// for the caller to revoke.
    ///
    /// # Errors
    /// `BadState` when not attached; `PluginCall` when the plugin refuses.
    pub fn detach(&mut self) -> Result<usize, PluginError> {
        let Some((id, token)) = self.registration else {
            return Err(err(EvbStatus::BadState, "the engine is not attached to a bridge".to_owned()));
        };
        let f = self.plugin.table.unregister_callback.expect("checked at load");
        // SAFETY: required member, with the id register_callback returned.
        let rc = unsafe { f(self.handle, id) };
        if rc != 0 {
            return Err(self.call_error("unregister_callback", i64::from(rc)));
        }
        self.registration = None;
        Ok(token)
    }

    /// Registers `cb` with `token` and removes it again at once, so that an
    /// engine which replays retired registrations (fault injection) has one
    /// whose token the caller then revokes.
    ///
    /// # Errors
    /// `PluginCall` when the plugin refuses either call.
    pub fn register_and_unregister(&mut self, cb: EvbEventCallback, token: usize) -> Result<(), PluginError> {
        let reg = self.plugin.table.register_callback.expect("checked at load");
        // SAFETY: required member, as in attach.
        let id = unsafe { reg(self.handle, cb, token as *mut c_void, self.kind_mask()) };
        if id <= 0 {
            return Err(self.call_error("register_callback", id));
        }
        let unreg = self.plugin.table.unregister_callback.expect("checked at load");
        // SAFETY: required member, with the id just returned.
        let rc = unsafe { unreg(self.handle, id) };
        if rc != 0 {
            return Err(self.call_error("unregister_callback", i64::from(rc)));
        }
        Ok(())
    }

    /// Starts the engine's threads.
    ///
    /// # Errors
    /// `BadState` when running; `PluginCall` when the plugin refuses.
    pub fn start(&mut self) -> Result<(), PluginError> {
        if self.running {
            return Err(err(EvbStatus::BadState, "the engine is already running".to_owned()));
        }
        let f = self.plugin.table.start.expect("checked at load");
        // SAFETY: required member.
        let rc = unsafe { f(self.handle) };
        if rc != 0 {
            return Err(self.call_error("start", i64::from(rc)));
        }
        self.running = true;
        Ok(())
    }

    /// Stops the engine's threads; no callback runs after it returns.
    ///
    /// # Errors
    /// `PluginCall` when the plugin reports a failure.
    pub fn stop(&mut self) -> Result<(), PluginError> {
        let f = self.plugin.table.stop.expect("checked at load");
        // SAFETY: required member; idempotent per the ABI.
        let rc = unsafe { f(self.handle) };
        self.running = false;
        if rc != 0 {
            return Err(self.call_error("stop", i64::from(rc)));
        }
        Ok(())
    }

    /// Refreshes and returns the engine's own counter values, in the order of
    /// the description's `counters`. The slice's address is stable.
    pub fn counters(&mut self) -> &[u64] {
        if let Some(f) = self.plugin.table.counters {
            let mut cp: *const EvbPluginCounter = std::ptr::null();
            // SAFETY: optional member present, called per its contract.
            let n = unsafe { f(self.handle, &mut cp) } as usize;
            if !cp.is_null() {
                for i in 0..n.min(self.counter_values.len()) {
                    // SAFETY: i < n, the array's length.
                    self.counter_values[i] = unsafe { (*cp.add(i)).value };
                }
            }
        }
        &self.counter_values
    }

    /// Runs a plugin-defined test command.
    ///
    /// # Errors
    /// `InvalidArgument` for a command that is not 1 to 32 bytes of
    /// `[a-z0-9_]`; `Unsupported` without a `debug` member; `PluginCall`
    /// with the plugin's message when it returns a negative code.
    pub fn debug(&mut self, command: &str, arg: u64) -> Result<i64, PluginError> {
        if !valid_kind_name(command) {
            return Err(err(EvbStatus::InvalidArgument, format!("debug command \"{command}\" is not 1 to 32 characters of [a-z0-9_]")));
        }
        let Some(f) = self.plugin.table.debug else {
            return Err(err(EvbStatus::Unsupported, format!("Engine plugin {} has no debug commands.", self.plugin.path.display())));
        };
        let c = CString::new(command).expect("validated: no NUL");
        // SAFETY: optional member present; the command is NUL-terminated.
        let rc = unsafe { f(self.handle, c.as_ptr(), arg) };
        if rc < 0 {
            return Err(self.call_error(&format!("debug command {command}"), rc));
        }
        Ok(rc)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let t = self.plugin.table;
        // SAFETY: required members; free stops the engine if needed. A
        // registration still present is removed first, so that the plugin's
        // unregister guarantee holds before its engine goes away.
        unsafe {
            (t.stop.expect("checked at load"))(self.handle);
            if let Some((id, _)) = self.registration.take() {
                (t.unregister_callback.expect("checked at load"))(self.handle, id);
            }
            (t.free.expect("checked at load"))(self.handle);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rules() {
        assert!(valid_kind_name("udp") && valid_kind_name("a_1") && !valid_kind_name("") && !valid_kind_name("Udp"));
        assert!(!valid_kind_name(&"a".repeat(33)));
        assert!(valid_counter_name("udp_errors_total") && !valid_counter_name("udp_errors") && !valid_counter_name("1_total"));
    }

    #[test]
    fn unused_keys_are_the_leaves_never_asked_for() {
        let hc = HostConfig {
            value: serde_json::json!({"udp": {"host": "h", "port": 1}, "tick": {"hz": 5}, "topics": ["a", "b"]}),
            strings: RefCell::new(Vec::new()),
            asked: RefCell::new(BTreeSet::new()),
        };
        assert_eq!(hc.lookup("udp.port"), Some(&serde_json::json!(1)));
        assert_eq!(hc.lookup("topics.1"), Some(&serde_json::json!("b")));
        assert_eq!(hc.lookup("tick"), Some(&serde_json::json!({"hz": 5})));
        assert_eq!(hc.unused(), vec!["udp.host".to_owned()]);
    }
}
