//! Small uploaded images (avatars, quick-reply pictures): the bytes decide the type, not the name or
//! the Content-Type header.

use crate::error::{Error, Result};

/// Widest and tallest image accepted, in pixels.
const MAX_IMAGE_SIDE: usize = 4096;

/// The MIME type of a PNG, JPEG, GIF or WebP image of at most `max_bytes` and 4096×4096 pixels.
///
/// Errors: [`Error::AvatarTooLarge`] over the size, [`Error::InvalidAvatar`] for anything else.
pub fn check_image(bytes: &[u8], max_bytes: usize) -> Result<&'static str> {
    if bytes.len() > max_bytes {
        return Err(Error::AvatarTooLarge { max_bytes });
    }
    let content_type = match imagesize::image_type(bytes) {
        Ok(imagesize::ImageType::Png) => "image/png",
        Ok(imagesize::ImageType::Jpeg) => "image/jpeg",
        Ok(imagesize::ImageType::Gif) => "image/gif",
        Ok(imagesize::ImageType::Webp) => "image/webp",
        _ => {
            return Err(Error::InvalidAvatar(
                "the image must be a PNG, JPEG, GIF or WebP image".into(),
            ))
        }
    };
    let size = imagesize::blob_size(bytes)
        .map_err(|_| Error::InvalidAvatar("the image is truncated or corrupt".into()))?;
    if size.width == 0
        || size.height == 0
        || size.width > MAX_IMAGE_SIDE
        || size.height > MAX_IMAGE_SIDE
    {
        return Err(Error::InvalidAvatar(format!(
            "an image is at most {MAX_IMAGE_SIDE}×{MAX_IMAGE_SIDE} pixels"
        )));
    }
    Ok(content_type)
}
