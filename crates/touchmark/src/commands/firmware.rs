//! Firmware (`docs/firmware.md`): a product's release encryption keys and the public keys that
//! sign its images.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use touchmark_core::api::{AddFirmwareKey, CreateReleaseKey};

use crate::args::ApiArgs;
use crate::commands::admin::client;
use crate::output::{self, Table, fields, or_dash};

/// `release` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Manage a product's release encryption keys: the server holds the private key; the
    /// brand owner's build encrypts images to the public key (`imgtool sign --encrypt`).
    #[command(subcommand)]
    Key(ReleaseKeyCommand),
    /// Upload a release: an MCUboot image signed by a registered key (`product firmware-key
    /// add`) and encrypted to one of the product's release keys. The server checks it (format,
    /// encryption, key unwrap, hash, signature, size) and stores it as uploaded; a refused
    /// image stores nothing, and the command prints its code and exits non-zero.
    // `--version` is the release's here, not the program's.
    #[command(disable_version_flag = true)]
    Upload {
        /// The product.
        #[arg(long)]
        product: String,
        /// The version given to `imgtool sign --version`; it must be the image header's.
        #[arg(long)]
        version: String,
        /// The signed, encrypted image (`imgtool sign --encrypt` output).
        #[arg(long)]
        image: PathBuf,
        /// A CycloneDX 1.6 SBOM (JSON) to store with it, as uploaded with its hash. It must be
        /// valid against the CycloneDX 1.6 JSON schema, and any SHA-256 hash of the component
        /// it describes (metadata.component) must be the image file's; otherwise the upload is
        /// refused as `sbom_invalid` with the validator's findings.
        #[arg(long)]
        sbom: Option<PathBuf>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List a product's releases, oldest first, withdrawn ones included.
    List {
        /// The product.
        #[arg(long)]
        product: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show one release.
    Show {
        /// The product.
        #[arg(long)]
        product: String,
        /// The release id.
        release: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Fetch a release's SBOM, byte for byte as uploaded (its SHA-256 is the release's SBOM
    /// SHA-256); to standard output, or to --out.
    Sbom {
        /// The product.
        #[arg(long)]
        product: String,
        /// The release id.
        release: String,
        /// Write it to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Withdraw a release: it stays stored and listed, and is offered for nothing new. Logged
    /// (`release.withdrawn`).
    Withdraw {
        /// The product.
        #[arg(long)]
        product: String,
        /// The release id.
        release: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

fn release_fields(r: touchmark_core::api::ReleaseBody) {
    fields(&[
        ("release", r.id),
        ("product", r.product),
        ("version", r.version),
        ("image SHA-256", r.image_sha256),
        ("size", r.image_size.to_string()),
        ("signing key", r.signing_key),
        ("release key", r.release_key),
        ("plaintext hash", r.plaintext_hash),
        ("SBOM SHA-256", or_dash(r.sbom_sha256.as_deref())),
        ("uploaded", r.created_at),
        ("withdrawn", or_dash(r.withdrawn_at.as_deref())),
    ]);
}

/// The algorithm of a release key, as imgtool names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyType {
    /// X25519: images with the ENCX25519 TLV (`imgtool keygen -t x25519`).
    X25519,
    /// ECDH on P-256: images with the ENCEC256 TLV (`imgtool keygen -t ecdsa-p256`).
    Ec256,
}

impl KeyType {
    fn as_str(self) -> &'static str {
        match self {
            KeyType::X25519 => "x25519",
            KeyType::Ec256 => "ec256",
        }
    }
}

/// `release key` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReleaseKeyCommand {
    /// Make a release encryption key for a product, held by the server (encrypted at rest, in
    /// its key provider), and write its public key. A product may have several (rotation);
    /// each is logged (`release_key.created`).
    Create {
        /// The product.
        #[arg(long)]
        product: String,
        /// The key's algorithm; it must be the one the product's bootloader was built for.
        #[arg(long = "type", value_enum, default_value_t = KeyType::X25519)]
        key_type: KeyType,
        /// Where to write the public key (PEM), for `imgtool sign --encrypt`
        /// [default: standard output].
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List a product's release encryption keys, oldest first.
    List {
        /// The product.
        #[arg(long)]
        product: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// `product firmware-key` subcommands.
#[derive(Debug, Subcommand)]
pub enum FirmwareKeyCommand {
    /// Register a public key that signs the product's images (ECDSA P-256 or Ed25519, PEM,
    /// as `imgtool getpub -e pem` writes it). The server never holds a signing private key.
    Add {
        /// The product.
        #[arg(long)]
        product: String,
        /// The public key file (PEM).
        #[arg(long)]
        key: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List the product's firmware signing keys, oldest first.
    List {
        /// The product.
        #[arg(long)]
        product: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// Runs a `release` subcommand.
pub async fn release(command: ReleaseCommand) -> anyhow::Result<()> {
    match command {
        ReleaseCommand::Key(ReleaseKeyCommand::Create {
            product,
            key_type,
            out,
            api,
        }) => {
            let request = CreateReleaseKey {
                algorithm: Some(key_type.as_str().to_owned()),
            };
            let key = client(&api)?.create_release_key(&product, &request).await?;
            if let Some(path) = &out {
                std::fs::write(path, &key.public_key_pem)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            if api.json {
                return output::json(&key);
            }
            match &out {
                Some(path) => {
                    println!(
                        "Created release key {} ({}) for product {}; public key written to {}.",
                        key.id,
                        key.algorithm,
                        key.product,
                        path.display()
                    );
                    fields(&[("public key SHA-256", key.public_key_sha256)]);
                }
                None => print!("{}", key.public_key_pem),
            }
        }
        ReleaseCommand::Upload {
            product,
            version,
            image,
            sbom,
            api,
        } => {
            let bytes = std::fs::read(&image)
                .with_context(|| format!("cannot read {}", image.display()))?;
            let sbom = sbom
                .map(|path| {
                    std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
                })
                .transpose()?;
            let release = client(&api)?
                .upload_release(&product, &version, &bytes, sbom.as_deref())
                .await?;
            if api.json {
                return output::json(&release);
            }
            println!(
                "Uploaded release {} (version {}) of product {}.",
                release.id, release.version, release.product
            );
            release_fields(release);
        }
        ReleaseCommand::List { product, api } => {
            let releases = client(&api)?.releases(&product).await?;
            if api.json {
                return output::json(&releases);
            }
            let mut table = Table::new(&[
                "RELEASE",
                "VERSION",
                "IMAGE SHA-256",
                "UPLOADED",
                "WITHDRAWN",
            ]);
            for r in releases {
                table.row(vec![
                    r.id,
                    r.version,
                    r.image_sha256,
                    r.created_at,
                    or_dash(r.withdrawn_at.as_deref()),
                ]);
            }
            table.print();
        }
        ReleaseCommand::Show {
            product,
            release,
            api,
        } => {
            let r = client(&api)?.release(&product, &release).await?;
            if api.json {
                return output::json(&r);
            }
            release_fields(r);
        }
        ReleaseCommand::Sbom {
            product,
            release,
            out,
            api,
        } => {
            let sbom = client(&api)?.release_sbom(&product, &release).await?;
            output::document(out.as_deref(), &sbom)?;
        }
        ReleaseCommand::Withdraw {
            product,
            release,
            api,
        } => {
            let r = client(&api)?.withdraw_release(&product, &release).await?;
            if api.json {
                return output::json(&r);
            }
            println!("Withdrew release {} (version {}).", r.id, r.version);
        }
        ReleaseCommand::Key(ReleaseKeyCommand::List { product, api }) => {
            let keys = client(&api)?.release_keys(&product).await?;
            if api.json {
                return output::json(&keys);
            }
            let mut table = Table::new(&["KEY", "ALGORITHM", "PUBLIC KEY SHA-256", "CREATED"]);
            for k in keys {
                table.row(vec![k.id, k.algorithm, k.public_key_sha256, k.created_at]);
            }
            table.print();
        }
    }
    Ok(())
}

/// Runs a `product firmware-key` subcommand.
pub async fn firmware_key(command: FirmwareKeyCommand) -> anyhow::Result<()> {
    match command {
        FirmwareKeyCommand::Add { product, key, api } => {
            let public_key_pem = std::fs::read_to_string(&key)
                .with_context(|| format!("cannot read {}", key.display()))?;
            let added = client(&api)?
                .add_firmware_key(&product, &AddFirmwareKey { public_key_pem })
                .await?;
            if api.json {
                return output::json(&added);
            }
            println!(
                "Registered firmware signing key {} ({}) for product {}.",
                added.key_id, added.algorithm, added.product
            );
        }
        FirmwareKeyCommand::List { product, api } => {
            let keys = client(&api)?.firmware_keys(&product).await?;
            if api.json {
                return output::json(&keys);
            }
            let mut table = Table::new(&["KEY ID", "ALGORITHM", "REGISTERED"]);
            for k in keys {
                table.row(vec![k.key_id, k.algorithm, k.created_at]);
            }
            table.print();
        }
    }
    Ok(())
}
