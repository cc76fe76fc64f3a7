//! Whether a file is in an OCI image without unpacking it: the layers are read in order
//! (verified), applying whiteouts and opaque directories to that one path.

use std::path::Path;

use super::layout::Resolved;
use super::limits::{Budget, Limits};
use super::unpack::{clean, UnpackError};
use super::ImageError;

pub fn has_file(image: &Resolved, rel: &str) -> Result<bool, ImageError> {
    let want = clean(Path::new(rel)).map_err(|why| ImageError::Select(format!("{rel}: {why}")))?;
    let mut present = false;
    let budget = Budget::new(Limits::from_env()?);
    // The config's diff_ids, checked here too when they are all there.
    let diff_ids = (image.diff_ids.len() == image.layers.len()).then_some(&image.diff_ids);
    for (i, layer) in image.layers.iter().enumerate() {
        let ((here, hidden), diff) =
            super::cache::with_layer(&image.layout, layer, &budget, |r| {
                let mut here = None;
                let mut hidden = false;
                let mut archive = tar::Archive::new(r);
                for entry in archive.entries().map_err(UnpackError::Read)? {
                    let entry = entry.map_err(UnpackError::Read)?;
                    let path = entry.path().map_err(UnpackError::Read)?;
                    let Ok(p) = clean(&path) else { continue };
                    let Some((name, parents)) = p.split_last() else {
                        continue;
                    };
                    let name = name.to_string_lossy();
                    if name == ".wh..wh..opq" {
                        // An opaque directory above the file hides lower layers' copy.
                        hidden |= want.len() > parents.len() && want.starts_with(parents);
                    } else if let Some(h) = name.strip_prefix(".wh.") {
                        let mut t = parents.to_vec();
                        t.push(h.into());
                        hidden |= want.starts_with(&t);
                    } else if p == want {
                        here = Some(entry.header().entry_type().is_file());
                    } else if want.starts_with(&p) && !entry.header().entry_type().is_dir() {
                        // A parent replaced by a non-directory.
                        hidden = true;
                    }
                }
                Ok((here, hidden))
            })?;
        if let Some(ids) = diff_ids {
            super::cache::check_diff_id(layer, &diff, &ids[i])?;
        }
        present = match here {
            Some(is_file) => is_file,
            None => present && !hidden,
        };
    }
    Ok(present)
}
