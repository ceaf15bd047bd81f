//! What WeChat's 公众号 and 企业微信 share: the message security (WXBizMsgCrypt), the XML of
//! pushes, and calling their APIs with cached access tokens.

pub mod client;
pub mod crypto;
pub mod xml;
