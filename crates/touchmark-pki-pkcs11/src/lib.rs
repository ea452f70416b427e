//! Touchmark's keys in a hardware module, through PKCS#11: a [`KeyProvider`] whose keys are
//! made inside the token, marked sensitive and not extractable, and used through [`Signer`]
//! without ever leaving it.
//!
//! - P-256 keys (the CAs, the server's TLS key) with `CKM_EC_KEY_PAIR_GEN`, signing with
//!   `CKM_ECDSA` over a SHA-256 digest made here; the token's raw `r || s` becomes the DER
//!   `Ecdsa-Sig-Value` the [`Signer`] contract promises.
//! - Ed25519 (the log key) with `CKM_EC_EDWARDS_KEY_PAIR_GEN` and `CKM_EDDSA`, where the token
//!   has them; where it does not, [`Pkcs11Keys::generate`] says so and makes nothing.
//! - A key is found by its label (`CKA_LABEL`): the key's name, or the label configured for it.
//! - Sessions come from a pool, so concurrent signing does not queue on one session. A session
//!   the token dropped (removed and put back, logged out, restarted) is replaced: the provider
//!   finds the token again by its label, logs in again, and retries the operation once. A
//!   signature that still fails is an error, and the caller writes nothing (I3, I6).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use touchmark_pki::{KeyAlgorithm, KeyProvider, PkiError, Signer, SoftwareSigner, spki_of};
use zeroize::Zeroizing;

pub mod der;

/// The default number of idle sessions kept open for signing.
pub const DEFAULT_SESSIONS: usize = 16;

/// The `[pkcs11]` table of `touchmark.toml`: which module, which token, where its PIN is, and
/// the labels of the keys.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Config {
    /// The PKCS#11 module (a shared library), such as `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The token's label (`CKA_LABEL` of the token, as `pkcs11-tool -L` shows it).
    pub token: String,
    /// A file holding the user PIN (a trailing newline is ignored).
    #[serde(default)]
    pub pin_file: Option<PathBuf>,
    /// An environment variable holding the user PIN.
    #[serde(default)]
    pub pin_env: Option<String>,
    /// Idle sessions kept open for signing [default: 16].
    #[serde(default)]
    pub sessions: Option<usize>,
    /// A token label for a key name, where it is not the name itself.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Put before the name of every key not in `labels` to make its token label, so that
    /// several installations can share one token (`acme-` makes `acme-root-ca`).
    #[serde(default)]
    pub label_prefix: Option<String>,
}

impl Pkcs11Config {
    /// The token label of the key named `name`.
    pub fn label_of(&self, name: &str) -> String {
        match (self.labels.get(name), &self.label_prefix) {
            (Some(label), _) => label.clone(),
            (None, Some(prefix)) => format!("{prefix}{name}"),
            (None, None) => name.to_owned(),
        }
    }

    /// The key name whose token label is `label`, if any.
    fn name_of(&self, label: &str) -> Option<String> {
        if let Some((name, _)) = self.labels.iter().find(|(_, l)| *l == label) {
            return Some(name.clone());
        }
        let name = match &self.label_prefix {
            Some(prefix) => label.strip_prefix(prefix.as_str())?,
            None => label,
        };
        (!self.labels.contains_key(name) && check_name(name).is_ok()).then(|| name.to_owned())
    }

    /// The user PIN, from the file or the variable (exactly one of them must be set).
    ///
    /// # Errors
    /// [`PkiError::KeyModule`] when neither or both are set, the file cannot be read, the
    /// variable is unset, or the PIN is empty.
    pub fn pin(&self) -> Result<Zeroizing<String>, PkiError> {
        let pin = match (&self.pin_file, &self.pin_env) {
            (Some(file), None) => Zeroizing::new(std::fs::read_to_string(file).map_err(|e| {
                PkiError::KeyModule(format!(
                    "cannot read the PIN of token {:?} from {}: {e}",
                    self.token,
                    file.display()
                ))
            })?),
            (None, Some(var)) => Zeroizing::new(std::env::var(var).map_err(|_| {
                PkiError::KeyModule(format!(
                    "the PIN of token {:?} is to be in ${var}, which is not set",
                    self.token
                ))
            })?),
            (None, None) => {
                return Err(PkiError::KeyModule(format!(
                    "no PIN for token {:?}: set `pkcs11.pin_file` or `pkcs11.pin_env`",
                    self.token
                )));
            }
            (Some(_), Some(_)) => {
                return Err(PkiError::KeyModule(
                    "set one of `pkcs11.pin_file` and `pkcs11.pin_env`, not both".into(),
                ));
            }
        };
        let trimmed = Zeroizing::new(pin.trim_end_matches(['\n', '\r']).to_owned());
        if trimmed.is_empty() {
            return Err(PkiError::KeyModule(format!(
                "the PIN of token {:?} is empty",
                self.token
            )));
        }
        Ok(trimmed)
    }
}

/// One module per process: PKCS#11 allows one `C_Initialize` per module and process, so every
/// provider of a module shares its context, which stays loaded until the process ends.
fn context(module: &Path) -> Result<Pkcs11, PkiError> {
    static MODULES: OnceLock<Mutex<BTreeMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut modules = MODULES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(ctx) = modules.get(module) {
        return Ok(ctx.clone());
    }
    if !module.is_file() {
        return Err(PkiError::KeyModule(format!(
            "the PKCS#11 module {} does not exist: install it (SoftHSM2: Debian package \
             softhsm2) or correct `pkcs11.module`",
            module.display()
        )));
    }
    let ctx = Pkcs11::new(module).map_err(|e| {
        PkiError::KeyModule(format!(
            "cannot load the PKCS#11 module {}: {e}",
            module.display()
        ))
    })?;
    match ctx.initialize(CInitializeArgs::OsThreads) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(PkiError::KeyModule(format!(
                "the PKCS#11 module {} failed to start: {}",
                module.display(),
                short(&e)
            )));
        }
    }
    modules.insert(module.to_owned(), ctx.clone());
    Ok(ctx)
}

/// A PKCS#11 error in a line: the `CKR_` name rather than the specification's paragraph.
fn short(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, function) => format!("{rv:?} in {function:?}"),
        other => other.to_string(),
    }
}

/// Whether `e` means that the session or the login is gone, so that a new session (and a new
/// login) may succeed where this one failed.
fn lost_session(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::UserNotLoggedIn
                | RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::TokenNotPresent
                | RvError::TokenNotRecognized
                | RvError::SlotIdInvalid
                | RvError::ObjectHandleInvalid
                | RvError::KeyHandleInvalid
                | RvError::CryptokiNotInitialized,
            _
        )
    )
}

/// The state that a reconnection replaces.
struct Connection {
    slot: Slot,
    /// Holds the login: PKCS#11 logs in an application, not a session, for as long as one of
    /// its sessions is open.
    _anchor: Session,
}

struct Inner {
    ctx: Pkcs11,
    config: Pkcs11Config,
    pin: AuthPin,
    connection: Mutex<Connection>,
    /// Bumped by every reconnection; a signer's cached key handle is good for one epoch.
    epoch: AtomicU64,
    idle: Mutex<Vec<(u64, Session)>>,
    max_idle: usize,
}

impl Inner {
    /// Finds the token by its label, opens a session and logs in.
    fn connect(ctx: &Pkcs11, config: &Pkcs11Config, pin: &AuthPin) -> Result<Connection, PkiError> {
        let module = config.module.display();
        let slots = ctx.get_slots_with_token().map_err(|e| {
            PkiError::KeyModule(format!(
                "module {module}: cannot list its slots: {}",
                short(&e)
            ))
        })?;
        let mut seen = Vec::new();
        let mut found = None;
        for slot in slots {
            let Ok(info) = ctx.get_token_info(slot) else {
                continue;
            };
            let label = info.label().trim_end().to_owned();
            if label == config.token {
                found = Some(slot);
                break;
            }
            seen.push(label);
        }
        let Some(slot) = found else {
            return Err(PkiError::KeyModule(format!(
                "module {module} has no token labelled {:?} (its tokens: {}): create it, or \
                 correct `pkcs11.token`",
                config.token,
                if seen.is_empty() {
                    "none".to_owned()
                } else {
                    format!("{seen:?}")
                }
            )));
        };
        let anchor = ctx.open_rw_session(slot).map_err(|e| {
            PkiError::KeyModule(format!(
                "token {:?}: cannot open a session: {}",
                config.token,
                short(&e)
            ))
        })?;
        match anchor.login(UserType::User, Some(pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(
                RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange,
                _,
            )) => {
                return Err(PkiError::KeyModule(format!(
                    "the PIN for token {:?} is wrong: the token refused the login",
                    config.token
                )));
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
                return Err(PkiError::KeyModule(format!(
                    "the user PIN of token {:?} is locked: its security officer must reset it",
                    config.token
                )));
            }
            Err(e) => {
                return Err(PkiError::KeyModule(format!(
                    "token {:?}: cannot log in: {}",
                    config.token,
                    short(&e)
                )));
            }
        }
        Ok(Connection {
            slot,
            _anchor: anchor,
        })
    }

    fn slot(&self) -> Slot {
        self.connection
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .slot
    }

    /// Replaces the connection, unless another thread did since `seen`.
    fn reconnect(&self, seen: u64) -> Result<(), PkiError> {
        let mut connection = self.connection.lock().unwrap_or_else(|p| p.into_inner());
        if self.epoch.load(Ordering::SeqCst) != seen {
            return Ok(());
        }
        tracing::warn!(token = %self.config.token, "the token dropped its session or login; reconnecting");
        // The old sessions are gone with the old login; closing them may fail, harmlessly.
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let fresh = Self::connect(&self.ctx, &self.config, &self.pin)?;
        *connection = fresh;
        self.epoch.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Runs `f` on a session of the pool (a new one if none is idle), and puts the session
    /// back unless it failed with a lost session. Returns the epoch it ran in, for
    /// [`Inner::reconnect`].
    fn with_session<T>(
        &self,
        f: impl FnOnce(&Session, u64) -> Result<T, CkError>,
    ) -> Result<T, (u64, CkError)> {
        let epoch = self.epoch.load(Ordering::SeqCst);
        let pooled = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                match idle.pop() {
                    Some((e, s)) if e == epoch => break Some(s),
                    Some(_) => continue,
                    None => break None,
                }
            }
        };
        let session = match pooled {
            Some(s) => s,
            None => self
                .ctx
                .open_rw_session(self.slot())
                .map_err(|e| (epoch, e))?,
        };
        let result = f(&session, epoch);
        match &result {
            Err(e) if lost_session(e) => {}
            _ => {
                let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                if idle.len() < self.max_idle {
                    idle.push((epoch, session));
                }
            }
        }
        result.map_err(|e| (epoch, e))
    }

    /// [`Inner::with_session`], once more on a new connection if the first try lost its
    /// session.
    fn retrying<T>(
        &self,
        mut f: impl FnMut(&Session, u64) -> Result<T, CkError>,
    ) -> Result<T, CkError> {
        match self.with_session(&mut f) {
            Err((epoch, e)) if lost_session(&e) => {
                if let Err(again) = self.reconnect(epoch) {
                    tracing::error!(error = %again, "cannot reconnect to the token");
                    return Err(e);
                }
                self.with_session(f).map_err(|(_, e)| e)
            }
            other => other.map_err(|(_, e)| e),
        }
    }

    fn find(
        &self,
        session: &Session,
        class: ObjectClass,
        label: &str,
    ) -> Result<Vec<ObjectHandle>, CkError> {
        session.find_objects(&[
            Attribute::Class(class),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
    }
}

/// Keys in a PKCS#11 token.
#[derive(Clone)]
pub struct Pkcs11Keys {
    inner: Arc<Inner>,
}

impl fmt::Debug for Pkcs11Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Keys")
            .field("module", &self.inner.config.module)
            .field("token", &self.inner.config.token)
            .finish_non_exhaustive()
    }
}

fn module_error(config: &Pkcs11Config, what: &str, e: &CkError) -> PkiError {
    PkiError::KeyModule(format!("token {:?}: {what}: {}", config.token, short(e)))
}

impl Pkcs11Keys {
    /// Loads the module, finds the token, reads the PIN and logs in: every misconfiguration
    /// (a missing module, an unknown token, a wrong or missing PIN) fails here, at start-up.
    ///
    /// # Errors
    /// [`PkiError::KeyModule`] saying what is wrong and what to change.
    pub fn open(config: &Pkcs11Config) -> Result<Self, PkiError> {
        let pin = config.pin()?;
        let ctx = context(&config.module)?;
        let pin = AuthPin::new(pin.to_string());
        let connection = Inner::connect(&ctx, config, &pin)?;
        Ok(Pkcs11Keys {
            inner: Arc::new(Inner {
                ctx,
                config: config.clone(),
                pin,
                connection: Mutex::new(connection),
                epoch: AtomicU64::new(0),
                idle: Mutex::new(Vec::new()),
                max_idle: config.sessions.unwrap_or(DEFAULT_SESSIONS).max(1),
            }),
        })
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &Pkcs11Config {
        &self.inner.config
    }

    /// Whether the token has the mechanisms that keys of `alg` need.
    ///
    /// # Errors
    /// [`PkiError::KeyModule`] if the token cannot list its mechanisms.
    pub fn supports(&self, alg: KeyAlgorithm) -> Result<bool, PkiError> {
        let needs = match alg {
            KeyAlgorithm::EcdsaP256 => [MechanismType::ECC_KEY_PAIR_GEN, MechanismType::ECDSA],
            KeyAlgorithm::Ed25519 => [
                MechanismType::ECC_EDWARDS_KEY_PAIR_GEN,
                MechanismType::EDDSA,
            ],
        };
        // One mechanism at a time: the whole list holds vendor mechanisms that the binding
        // does not know, and logs each as an error.
        let slot = self.inner.slot();
        for mechanism in needs {
            match self.inner.ctx.get_mechanism_info(slot, mechanism) {
                Ok(_) => {}
                Err(CkError::Pkcs11(RvError::MechanismInvalid, _)) => return Ok(false),
                Err(e) => {
                    return Err(module_error(
                        &self.inner.config,
                        "cannot read its mechanisms",
                        &e,
                    ));
                }
            }
        }
        Ok(true)
    }

    /// Logs the application out of the token, as a token that restarted or timed out would:
    /// the next operation logs in again. For operators' tools and tests of reconnection.
    ///
    /// # Errors
    /// [`PkiError::KeyModule`] if the token refuses.
    pub fn logout(&self) -> Result<(), PkiError> {
        self.inner
            .retrying(|s, _| s.logout())
            .map_err(|e| module_error(&self.inner.config, "cannot log out", &e))
    }

    fn signer(
        &self,
        name: &str,
        label: &str,
        handle: ObjectHandle,
        epoch: u64,
        session: &Session,
    ) -> Result<TokenSigner, PkiError> {
        let config = &self.inner.config;
        let attrs = session
            .get_attributes(
                handle,
                &[
                    AttributeType::KeyType,
                    AttributeType::EcParams,
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::Sign,
                ],
            )
            .map_err(|e| module_error(config, &format!("cannot read key {label:?}"), &e))?;
        let mut key_type = None;
        let mut params = Vec::new();
        let (mut sensitive, mut extractable, mut sign) = (false, true, false);
        for attr in attrs {
            match attr {
                Attribute::KeyType(t) => key_type = Some(t),
                Attribute::EcParams(p) => params = p,
                Attribute::Sensitive(b) => sensitive = b,
                Attribute::Extractable(b) => extractable = b,
                Attribute::Sign(b) => sign = b,
                _ => {}
            }
        }
        let alg = match key_type {
            Some(t) if t == KeyType::EC && params == der::P256_PARAMS => KeyAlgorithm::EcdsaP256,
            Some(t)
                if t == KeyType::EC_EDWARDS
                    && (params == der::ED25519_OID_PARAMS
                        || params == der::ED25519_NAME_PARAMS) =>
            {
                KeyAlgorithm::Ed25519
            }
            other => {
                let what = match other {
                    Some(t) if t == KeyType::EC || t == KeyType::EC_EDWARDS => {
                        format!(
                            "{t} key on another curve (CKA_EC_PARAMS {})",
                            hex::encode(&params)
                        )
                    }
                    Some(t) => format!("{t} key"),
                    None => "key of unknown type".to_owned(),
                };
                return Err(PkiError::KeyRejected(format!(
                    "token {:?}: key {label:?} (for {name}) is a {what}; Touchmark's keys are \
                     ECDSA P-256 or Ed25519",
                    config.token
                )));
            }
        };
        if !sensitive || extractable {
            return Err(PkiError::KeyRejected(format!(
                "token {:?}: key {label:?} (for {name}) can be read out of the token \
                 (CKA_SENSITIVE {sensitive}, CKA_EXTRACTABLE {extractable}); Touchmark uses only \
                 sensitive, non-extractable keys",
                config.token
            )));
        }
        if !sign {
            return Err(PkiError::KeyRejected(format!(
                "token {:?}: key {label:?} (for {name}) may not sign (CKA_SIGN false)",
                config.token
            )));
        }
        let public = self
            .inner
            .find(session, ObjectClass::PUBLIC_KEY, label)
            .map_err(|e| module_error(config, "cannot search the token", &e))?;
        let Some(&public) = public.first() else {
            return Err(PkiError::KeyModule(format!(
                "token {:?}: key {label:?} (for {name}) has no public key object with its label",
                config.token
            )));
        };
        let point = session
            .get_attributes(public, &[AttributeType::EcPoint])
            .map_err(|e| module_error(config, &format!("cannot read public key {label:?}"), &e))?;
        let raw = point
            .into_iter()
            .find_map(|a| match a {
                Attribute::EcPoint(p) => Some(p),
                _ => None,
            })
            .and_then(|p| {
                der::ec_point(
                    &p,
                    if alg == KeyAlgorithm::EcdsaP256 {
                        65
                    } else {
                        32
                    },
                )
            });
        let spki = raw.as_deref().and_then(|r| spki_of(alg, r));
        let (Some(raw), Some(spki)) = (raw, spki) else {
            return Err(PkiError::KeyRejected(format!(
                "token {:?}: public key {label:?} (for {name}) is not a {alg} point",
                config.token
            )));
        };
        Ok(TokenSigner {
            keys: Arc::clone(&self.inner),
            name: name.to_owned(),
            label: label.to_owned(),
            alg,
            raw,
            spki,
            handle: Mutex::new((epoch, handle)),
        })
    }

    fn find_private(&self, name: &str) -> Result<Arc<dyn Signer>, PkiError> {
        let config = &self.inner.config;
        let label = config.label_of(name);
        let found = self.inner.retrying(|session, epoch| {
            let found = self.inner.find(session, ObjectClass::PRIVATE_KEY, &label)?;
            Ok(match found.as_slice() {
                [] => Err(PkiError::KeyNotFound(if label == name {
                    format!("{name} (in token {:?})", config.token)
                } else {
                    format!("{name} (token {:?}, label {label:?})", config.token)
                })),
                [handle] => self.signer(name, &label, *handle, epoch, session),
                many => Err(PkiError::KeyModule(format!(
                    "token {:?} holds {} private keys labelled {label:?}: remove all but one",
                    config.token,
                    many.len()
                ))),
            })
        });
        let signer = found.map_err(|e| module_error(config, "cannot search the token", &e))??;
        Ok(Arc::new(signer))
    }
}

fn check_name(name: &str) -> Result<(), PkiError> {
    let bytes = name.as_bytes();
    let ok = matches!(bytes.first(), Some(b) if b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.len() <= 64
        && bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(PkiError::InvalidKeyName(name.to_owned()))
    }
}

impl KeyProvider for Pkcs11Keys {
    fn generate(&self, name: &str, alg: KeyAlgorithm) -> Result<Arc<dyn Signer>, PkiError> {
        check_name(name)?;
        if self.contains(name) {
            return Err(PkiError::KeyExists(name.to_owned()));
        }
        let config = &self.inner.config;
        if !self.supports(alg)? {
            let mechanisms = match alg {
                KeyAlgorithm::EcdsaP256 => "CKM_EC_KEY_PAIR_GEN and CKM_ECDSA",
                KeyAlgorithm::Ed25519 => "CKM_EC_EDWARDS_KEY_PAIR_GEN and CKM_EDDSA",
            };
            return Err(PkiError::KeyModule(format!(
                "token {:?} cannot make {alg} keys (it lacks {mechanisms}): {name} needs one; \
                 use a token that has them",
                config.token
            )));
        }
        let label = config.label_of(name);
        let (mechanism, params) = match alg {
            KeyAlgorithm::EcdsaP256 => (Mechanism::EccKeyPairGen, der::P256_PARAMS.to_vec()),
            KeyAlgorithm::Ed25519 => (
                Mechanism::EccEdwardsKeyPairGen,
                der::ED25519_OID_PARAMS.to_vec(),
            ),
        };
        let id = Sha256::digest(label.as_bytes())[..16].to_vec();
        let generated = self.inner.retrying(|session, epoch| {
            let public = [
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::Verify(true),
                Attribute::EcParams(params.clone()),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.clone()),
            ];
            let private = [
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                Attribute::Derive(false),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.clone()),
            ];
            let (_, handle) = session.generate_key_pair(&mechanism, &public, &private)?;
            Ok(self.signer(name, &label, handle, epoch, session))
        });
        let signer = generated
            .map_err(|e| module_error(config, &format!("cannot make {alg} key {label:?}"), &e))??;
        Ok(Arc::new(signer))
    }

    fn load(&self, name: &str) -> Result<Arc<dyn Signer>, PkiError> {
        check_name(name)?;
        self.find_private(name)
    }

    fn import_key(&self, name: &str, key: &SoftwareSigner) -> Result<Arc<dyn Signer>, PkiError> {
        check_name(name)?;
        if self.contains(name) {
            return Err(PkiError::KeyExists(name.to_owned()));
        }
        let config = &self.inner.config;
        let alg = key.algorithm();
        let pkcs8 = key.pkcs8_der();
        let private = Zeroizing::new(der::pkcs8_private(alg, &pkcs8).ok_or_else(|| {
            PkiError::KeyRejected(format!(
                "{name}: not a PKCS#8 {alg} key of the expected shape"
            ))
        })?);
        let label = config.label_of(name);
        let (key_type, params) = match alg {
            KeyAlgorithm::EcdsaP256 => (KeyType::EC, der::P256_PARAMS.to_vec()),
            KeyAlgorithm::Ed25519 => (KeyType::EC_EDWARDS, der::ED25519_OID_PARAMS.to_vec()),
        };
        let mut point = vec![0x04, key.public_key_raw().len() as u8];
        point.extend_from_slice(key.public_key_raw());
        let id = Sha256::digest(label.as_bytes())[..16].to_vec();
        let imported = self.inner.retrying(|session, epoch| {
            session.create_object(&[
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::KeyType(key_type),
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::Verify(true),
                Attribute::EcParams(params.clone()),
                Attribute::EcPoint(point.clone()),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.clone()),
            ])?;
            let handle = session.create_object(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(key_type),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                Attribute::Derive(false),
                Attribute::EcParams(params.clone()),
                Attribute::Value(private.to_vec()),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.clone()),
            ])?;
            Ok(self.signer(name, &label, handle, epoch, session))
        });
        let signer = imported
            .map_err(|e| module_error(config, &format!("cannot take in key {label:?}"), &e))??;
        // The token signs as the software key did: the key went in whole.
        let probe = b"touchmark: a key moved into the token signs as before";
        let signature = signer.sign(probe)?;
        let verified = match alg {
            KeyAlgorithm::EcdsaP256 => aws_lc_rs::signature::UnparsedPublicKey::new(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
                key.public_key_raw(),
            )
            .verify(probe, &signature),
            KeyAlgorithm::Ed25519 => aws_lc_rs::signature::UnparsedPublicKey::new(
                &aws_lc_rs::signature::ED25519,
                key.public_key_raw(),
            )
            .verify(probe, &signature),
        };
        if verified.is_err() {
            return Err(PkiError::KeyModule(format!(
                "token {:?}: key {label:?} taken in for {name} does not sign as the original: \
                 remove it from the token",
                config.token
            )));
        }
        Ok(Arc::new(signer))
    }

    fn contains(&self, name: &str) -> bool {
        let label = self.inner.config.label_of(name);
        self.inner
            .retrying(|session, _| self.inner.find(session, ObjectClass::PRIVATE_KEY, &label))
            .is_ok_and(|found| !found.is_empty())
    }

    fn store_kind(&self) -> &'static str {
        "pkcs11"
    }

    fn names(&self) -> Result<Vec<String>, PkiError> {
        let config = &self.inner.config;
        let labels = self
            .inner
            .retrying(|session, _| {
                let handles =
                    session.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])?;
                let mut labels = Vec::new();
                for handle in handles {
                    for attr in session.get_attributes(handle, &[AttributeType::Label])? {
                        if let Attribute::Label(l) = attr {
                            labels.push(String::from_utf8_lossy(&l).into_owned());
                        }
                    }
                }
                Ok(labels)
            })
            .map_err(|e| module_error(config, "cannot list its keys", &e))?;
        // Keys of other installations sharing the token (another prefix) are not listed.
        let mut names: Vec<String> = labels
            .iter()
            .filter_map(|label| config.name_of(label))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn describe(&self) -> String {
        format!(
            "PKCS#11 token {:?} (module {})",
            self.inner.config.token,
            self.inner.config.module.display()
        )
    }
}

/// A key in the token, used through a pooled session.
pub struct TokenSigner {
    keys: Arc<Inner>,
    name: String,
    label: String,
    alg: KeyAlgorithm,
    raw: Vec<u8>,
    spki: Vec<u8>,
    /// The private key's handle, and the connection epoch it is good for.
    handle: Mutex<(u64, ObjectHandle)>,
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSigner")
            .field("name", &self.name)
            .field("label", &self.label)
            .field("token", &self.keys.config.token)
            .field("algorithm", &self.alg)
            .field("public_key", &hex::encode(&self.raw))
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// The key's handle in the connection of `epoch`, looked up again after a reconnection.
    fn handle(&self, session: &Session, epoch: u64) -> Result<ObjectHandle, CkError> {
        let mut cached = self.handle.lock().unwrap_or_else(|p| p.into_inner());
        if cached.0 == epoch {
            return Ok(cached.1);
        }
        let found = self
            .keys
            .find(session, ObjectClass::PRIVATE_KEY, &self.label)?;
        match found.as_slice() {
            [handle] => {
                *cached = (epoch, *handle);
                Ok(*handle)
            }
            _ => Err(CkError::Pkcs11(
                RvError::KeyHandleInvalid,
                cryptoki::context::Function::FindObjects,
            )),
        }
    }

    /// The key's label in the token.
    pub fn label(&self) -> &str {
        &self.label
    }
}

impl Signer for TokenSigner {
    fn algorithm(&self) -> KeyAlgorithm {
        self.alg
    }

    fn public_key_spki(&self) -> &[u8] {
        &self.spki
    }

    fn public_key_raw(&self) -> &[u8] {
        &self.raw
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        let digest;
        let (mechanism, data) = match self.alg {
            KeyAlgorithm::EcdsaP256 => {
                digest = Sha256::digest(message);
                (Mechanism::Ecdsa, &digest[..])
            }
            KeyAlgorithm::Ed25519 => (
                Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
                message,
            ),
        };
        let signature = self.keys.retrying(|session, epoch| {
            let handle = self.handle(session, epoch)?;
            session.sign(&mechanism, handle, data)
        });
        let signature = match signature {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(token = %self.keys.config.token, key = %self.label, error = %short(&e), "signing in the token failed");
                return Err(PkiError::SigningFailed);
            }
        };
        match self.alg {
            KeyAlgorithm::EcdsaP256 => der::ecdsa_raw_to_der(&signature).ok_or_else(|| {
                tracing::error!(token = %self.keys.config.token, key = %self.label, len = signature.len(), "the token returned an ECDSA signature of the wrong length");
                PkiError::SigningFailed
            }),
            KeyAlgorithm::Ed25519 if signature.len() == 64 => Ok(signature),
            KeyAlgorithm::Ed25519 => {
                tracing::error!(token = %self.keys.config.token, key = %self.label, len = signature.len(), "the token returned an Ed25519 signature of the wrong length");
                Err(PkiError::SigningFailed)
            }
        }
    }
}
