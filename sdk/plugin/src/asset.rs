//! Read-only files from the gateway's asset folder.

/// A read-only file from the gateway's asset folder (`plugins.asset_dir`),
/// such as a GeoIP database. The gateway loads it once and shares it
/// between calls; a plugin reads only the ranges it needs, so a large file
/// costs a call nothing until it is read.
pub struct Asset {
    #[cfg(target_arch = "wasm32")]
    inner: crate::bindings::host::Asset,
    #[cfg(not(target_arch = "wasm32"))]
    bytes: Vec<u8>,
}

impl Asset {
    /// Opens the asset at `path` inside the asset folder (as the project's
    /// configuration names it).
    pub fn open(path: &str) -> Result<Asset, String> {
        #[cfg(target_arch = "wasm32")]
        return crate::bindings::host::open_asset(path).map(|inner| Asset { inner });
        #[cfg(not(target_arch = "wasm32"))]
        return crate::native::open_asset(path).map(|bytes| Asset { bytes });
    }

    /// The size in bytes.
    pub fn size(&self) -> u64 {
        #[cfg(target_arch = "wasm32")]
        return self.inner.size();
        #[cfg(not(target_arch = "wasm32"))]
        return self.bytes.len() as u64;
    }

    /// Up to `len` bytes from `offset` (fewer at the end).
    pub fn read(&self, offset: u64, len: u32) -> Vec<u8> {
        #[cfg(target_arch = "wasm32")]
        return self.inner.read(offset, len);
        #[cfg(not(target_arch = "wasm32"))]
        {
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(self.bytes.len());
            let end = start.saturating_add(len as usize).min(self.bytes.len());
            self.bytes[start..end].to_vec()
        }
    }
}
