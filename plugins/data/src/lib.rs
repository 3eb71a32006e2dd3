//! rolekd-data: the built-in datasets.
//!
//! - [`mnist`]: `fashion-mnist` and `mnist`, read from IDX files (gzip or raw).
//! - [`cifar`]: `cifar10` and `cifar100`, read from CIFAR's binary version or, when the
//!   directory holds it instead, its python version (torchvision's pickles, via `rolekd-pickle`).
//! - [`folder`]: `image-folder`, one subfolder of PNG / JPEG / BMP images per class.
//! - [`stream`]: `image-stream`, image files of any size decoded while training (ImageNet).
//! - [`tensors`]: `tensors`, uint8 images and int64 labels in safetensors files.
//! - [`split`]: the parameters every dataset shares (`path`, `train_size`, `val_size`,
//!   `test_size`, `normalize`) and the seeded train / validation / test split.
//! - [`files`]: reading a file whole, gunzipping it when it starts with the gzip magic.
//! - [`idx`]: the IDX format.
//!
//! Every loader validates what it reads and reports a bad file as [`rolekd_core::Error::Data`]
//! naming the file and what is wrong with it.

pub mod cifar;
pub mod files;
pub mod folder;
pub mod idx;
pub mod mnist;
pub mod split;
pub mod stream;
pub mod tensors;

pub use split::{channel_stats, Normalize, SplitParams};

/// Called by the binary so the linker keeps this crate's plugin registrations.
pub fn link() {}

rolekd_core::register_plugin!(
    Dataset,
    "fashion-mnist",
    "Fashion-MNIST (28x28 grey, 10 classes) from IDX files; default path $ROLEKD_FASHION_MNIST or /usr/share/datasets/fashion-mnist",
    mnist::build_fashion_mnist
);
rolekd_core::register_plugin!(
    Dataset,
    "mnist",
    "MNIST digits (28x28 grey, 10 classes) from IDX files; default path $ROLEKD_MNIST or /usr/share/datasets/mnist",
    mnist::build_mnist
);
rolekd_core::register_plugin!(
    Dataset,
    "cifar10",
    "CIFAR-10 (32x32 RGB, 10 classes) from the binary version (data_batch_1..5.bin, test_batch.bin) or the python version (torchvision's pickles)",
    cifar::build_cifar10
);
rolekd_core::register_plugin!(
    Dataset,
    "cifar100",
    "CIFAR-100 (32x32 RGB, 100 fine classes) from the binary version (train.bin, test.bin) or the python version (torchvision's pickles)",
    cifar::build_cifar100
);
rolekd_core::register_plugin!(
    Dataset,
    "image-folder",
    "Labelled images (PNG, JPEG, BMP) in one subfolder per class, under train/ and test/ or directly; optional size: [H, W] (letterbox or stretch) and channels: 1 | 3",
    folder::build_image_folder
);
rolekd_core::register_plugin!(
    Dataset,
    "tensors",
    "uint8 images [N, H, W, C] and int64 labels [N] in a .safetensors file, or train.safetensors and test.safetensors in a folder",
    tensors::build_tensors
);
rolekd_core::register_plugin!(
    Dataset,
    "image-stream",
    "Image files of any size read and decoded while training (ImageNet's train/ + val/ layout, class folders); RandomResizedCrop / Resize + CenterCrop to size (default 224); memory does not grow with the image count",
    stream::build_image_stream
);
