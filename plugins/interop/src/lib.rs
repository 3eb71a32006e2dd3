//! rolekd-interop: rolekd and PyTorch.
//!
//! - [`torch_file`]: reads `torch.save` files (zip + pickle, via `rolekd-pickle`) without
//!   Python, and [`legacy`] the pre-1.6 format (RepDistiller's released teachers);
//! - [`names`]: rolekd's parameter names against RepDistiller's and torchvision's;
//! - [`import`]: a PyTorch state_dict as a rolekd checkpoint (`teacher:`, `init:`);
//! - [`export`]: a checkpoint as a PyTorch state_dict or TorchScript, and its logits;
//! - [`stage`]: the `import` stage kind (a PyTorch teacher inside a pipeline).

pub mod export;
pub mod import;
pub mod legacy;
pub mod names;
pub mod stage;
mod storage_kind;
pub mod torch_file;

/// Keeps this crate's registrations (the `import` stage kind) in a binary that links it.
pub fn link() {}
