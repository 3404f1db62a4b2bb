//! Every piece of web UI text, in one catalogue: English complete, Chinese complete (a
//! missing translation does not compile: each entry names both). Pages take the locale from
//! the `funmagic.lang` cookie (the footer's switch), else `Accept-Language`, else English.
//! The page script gets the whole catalogue of its locale as a JSON data block
//! (`#i18n`, not executed, so the CSP allows it); `{name}` placeholders are filled there
//! and by [`Tr::f`].

/// The UI's languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locale {
    En,
    Zh,
}

impl Locale {
    pub fn tag(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Zh => "zh",
        }
    }

    pub fn parse(tag: &str) -> Option<Locale> {
        match tag.trim().to_ascii_lowercase().as_str() {
            "en" => Some(Locale::En),
            "zh" => Some(Locale::Zh),
            _ => None,
        }
    }

    /// The first language of `Accept-Language` the UI has (by quality), else English.
    pub fn from_accept_language(header: Option<&str>) -> Locale {
        crate::tools::wanted_locales(None, header)
            .iter()
            .find_map(|tag| {
                let lang = tag.split('-').next().unwrap_or_default().to_ascii_lowercase();
                match lang.as_str() {
                    "en" => Some(Locale::En),
                    "zh" => Some(Locale::Zh),
                    _ => None,
                }
            })
            .unwrap_or(Locale::En)
    }
}

macro_rules! catalogue {
    ($($key:literal => $en:literal, $zh:literal;)*) => {
        /// `(key, English, Chinese)` for every message.
        pub const MESSAGES: &[(&str, &str, &str)] = &[$(($key, $en, $zh)),*];
    };
}

catalogue! {
    "brand" => "FunMagic", "FunMagic";
    "tagline" => "AI tools for your images: cut-outs, restyles and 3D, with live progress.", "为你的图片准备的 AI 工具：抠图、风格化、3D，实时查看进度。";
    "nav.tools" => "Tools", "工具";
    "nav.history" => "History", "历史";
    "nav.assets" => "Assets", "素材";
    "nav.credits" => "Credits", "积分";
    "nav.account" => "Account", "账户";
    "nav.signin" => "Sign in", "登录";
    "nav.signup" => "Sign up", "注册";
    "nav.signout" => "Sign out", "退出登录";
    "nav.menu" => "Menu", "菜单";
    "nav.skip" => "Skip to content", "跳到正文";
    "header.balance" => "{n} credits", "{n} 积分";
    "footer.language" => "Language", "语言";
    "footer.api" => "API reference", "API 文档";
    "common.loading" => "Loading…", "加载中…";
    "common.save" => "Save", "保存";
    "common.cancel" => "Cancel", "取消";
    "common.delete" => "Delete", "删除";
    "common.download" => "Download", "下载";
    "common.copy" => "Copy", "复制";
    "common.copied" => "Copied", "已复制";
    "common.more" => "Load more", "加载更多";
    "common.none" => "Nothing here yet.", "这里还没有内容。";
    "common.confirm" => "Are you sure?", "确定吗？";
    "common.done" => "Done.", "完成。";
    "common.credits" => "credits", "积分";
    "common.error" => "Something went wrong: {msg}", "出错了：{msg}";
    "common.network" => "The server could not be reached. Check your connection and try again.", "无法连接服务器，请检查网络后重试。";
    "common.back_home" => "Back to the tools", "返回工具列表";
    "home.title" => "Tools", "工具";
    "home.featured" => "Featured", "精选";
    "home.all" => "All tools", "全部工具";
    "home.empty" => "No tools are available yet.", "暂时没有可用的工具。";
    "home.open" => "Open", "打开";
    "home.cost" => "{n} credits", "{n} 积分";
    "auth.email" => "Email", "邮箱";
    "auth.password" => "Password", "密码";
    "auth.name" => "Name", "名字";
    "auth.new_password" => "New password (8 characters or more)", "新密码（至少 8 个字符）";
    "auth.signin.title" => "Sign in", "登录";
    "auth.signin.submit" => "Sign in", "登录";
    "auth.signin.no_account" => "No account yet?", "还没有账户？";
    "auth.signin.forgot" => "Forgot your password?", "忘记密码？";
    "auth.signup.title" => "Create your account", "创建账户";
    "auth.signup.submit" => "Sign up", "注册";
    "auth.signup.have_account" => "Already have an account?", "已经有账户了？";
    "auth.signup.sent" => "Welcome! We sent a verification link to your email.", "欢迎！我们已向你的邮箱发送验证链接。";
    "auth.or" => "or", "或";
    "auth.github" => "Continue with GitHub", "使用 GitHub 继续";
    "auth.google" => "Continue with Google", "使用 Google 继续";
    "auth.forgot.title" => "Forgot your password", "找回密码";
    "auth.forgot.help" => "Enter your email: if it has an account, we send it a link to choose a new password.", "输入邮箱：如果它有账户，我们会发送重设密码的链接。";
    "auth.forgot.submit" => "Send the link", "发送链接";
    "auth.forgot.sent" => "If that email has an account, a link is on its way. It is valid for one hour.", "如果该邮箱有账户，链接已发出，一小时内有效。";
    "auth.reset.title" => "Choose a new password", "设置新密码";
    "auth.reset.submit" => "Set the password", "设置密码";
    "auth.reset.done" => "Your password is changed. Sign in with it now.", "密码已更改，请用新密码登录。";
    "auth.reset.missing" => "This page needs the link from the email. Ask for a new one if it expired.", "请使用邮件中的链接打开此页。如果已过期，请重新申请。";
    "auth.verified.title" => "Email verification", "邮箱验证";
    "auth.verified.ok" => "Your email is verified. Thank you!", "邮箱已验证，谢谢！";
    "auth.verified.failed" => "This verification link is invalid or has expired.", "此验证链接无效或已过期。";
    "auth.verified.resend" => "Send a new verification email", "重新发送验证邮件";
    "device.title" => "Sign in a device", "授权设备登录";
    "device.enter" => "Enter the code your terminal shows:", "输入终端显示的代码：";
    "device.continue" => "Continue", "继续";
    "device.warning" => "Only approve if you just started this sign-in in your own terminal.", "只有当你刚在自己的终端里发起此登录时才批准。";
    "device.asked" => "{client} asked {age} with the code {code}.", "{client} 在{age}请求，代码 {code}。";
    "device.access" => "Approving gives it full access to your account.", "批准后它将拥有你账户的全部权限。";
    "device.unnamed" => "An unnamed client", "未命名的客户端";
    "device.approve" => "Approve this device", "批准此设备";
    "device.deny" => "Deny", "拒绝";
    "device.approved" => "Approved. You can close this page and return to your terminal.", "已批准。可以关闭此页，回到终端。";
    "device.denied" => "Denied. The terminal will not be signed in.", "已拒绝，终端不会登录。";
    "time.just_now" => "just now", "刚才";
    "time.minutes" => "{n} min ago", "{n} 分钟前";
    "time.hours" => "{n} h ago", "{n} 小时前";
    "tool.upload" => "Your image", "你的图片";
    "tool.drop" => "Drop an image here, or choose one", "把图片拖到这里，或选择一张";
    "tool.choose" => "Choose an image", "选择图片";
    "tool.formats" => "PNG, JPEG or WebP, up to {mb} MB", "PNG、JPEG 或 WebP，最大 {mb} MB";
    "tool.uploading" => "Uploading… {pct}%", "上传中… {pct}%";
    "tool.uploaded" => "Uploaded", "已上传";
    "tool.bad_type" => "This file is not a PNG, JPEG or WebP image.", "此文件不是 PNG、JPEG 或 WebP 图片。";
    "tool.too_big" => "This file is larger than {mb} MB.", "此文件超过 {mb} MB。";
    "tool.style" => "Style", "风格";
    "tool.cost" => "Cost: {n} credits", "费用：{n} 积分";
    "tool.balance" => "You have {n} credits available.", "你有 {n} 积分可用。";
    "tool.run" => "Run", "运行";
    "tool.run_again" => "Run again", "再运行一次";
    "tool.signin_to_run" => "Sign in to run this tool", "登录后即可使用此工具";
    "tool.need_image" => "Choose an image first.", "请先选择图片。";
    "tool.need_credits" => "Not enough credits: this needs {need}, you have {have}.", "积分不足：需要 {need}，你有 {have}。";
    "tool.buy" => "Buy credits", "购买积分";
    "tool.steps" => "Steps", "步骤";
    "tool.next" => "Continue with: {step}", "继续：{step}";
    "tool.pick" => "Pick the image to continue with", "选择要继续使用的图片";
    "tool.placeholder" => "Your results appear here, with live progress while the tool runs.", "运行时这里会实时显示进度，完成后显示结果。";
    "tool.not_found" => "There is no such tool.", "没有这个工具。";
    "progress.title" => "Progress", "进度";
    "progress.submitted" => "Submitted", "已提交";
    "progress.queued" => "Waiting in the queue", "排队中";
    "progress.position" => "Position {n} in the queue", "队列中第 {n} 位";
    "progress.running" => "Running", "运行中";
    "progress.reconnecting" => "Connection lost, reconnecting…", "连接中断，正在重连…";
    "progress.completed" => "Done!", "完成！";
    "progress.failed" => "The task failed: {msg}", "任务失败：{msg}";
    "progress.cancelled" => "The task was cancelled.", "任务已取消。";
    "progress.cancel" => "Cancel the task", "取消任务";
    "progress.spent" => "{n} credits spent", "花费 {n} 积分";
    "result.title" => "Result", "结果";
    "result.before" => "Before", "原图";
    "result.after" => "After", "结果";
    "result.compare" => "Drag to compare", "拖动对比";
    "result.model" => "3D model: drag to turn, scroll or pinch to zoom", "3D 模型：拖动旋转，滚轮或双指缩放";
    "result.points" => "Point cloud: drag to turn, scroll or pinch to zoom", "点云：拖动旋转，滚轮或双指缩放";
    "result.viewer_failed" => "The 3D viewer could not start here (no WebGL): download the file instead.", "此处无法启动 3D 查看器（不支持 WebGL），请下载文件查看。";
    "status.pending" => "Pending", "待处理";
    "status.queued" => "Queued", "排队中";
    "status.running" => "Running", "运行中";
    "status.completed" => "Completed", "已完成";
    "status.failed" => "Failed", "失败";
    "status.cancelled" => "Cancelled", "已取消";
    "status.skipped" => "Skipped", "已跳过";
    "tasks.title" => "History", "历史";
    "tasks.empty" => "You have not run any tool yet.", "你还没有运行过任何工具。";
    "tasks.tool" => "Tool", "工具";
    "tasks.status" => "Status", "状态";
    "tasks.cost" => "Cost", "费用";
    "tasks.created" => "Started", "开始时间";
    "tasks.finished" => "Finished", "完成时间";
    "tasks.open" => "Details", "详情";
    "task.title" => "Task", "任务";
    "task.not_found" => "There is no such task, or it is not yours.", "没有这个任务，或它不属于你。";
    "task.outputs" => "Outputs", "输出";
    "task.error" => "Error", "错误";
    "assets.title" => "Assets", "素材";
    "assets.empty" => "Your uploads and results appear here.", "你上传的文件和生成的结果会显示在这里。";
    "assets.publish" => "Publish", "公开";
    "assets.unpublish" => "Make private", "设为私有";
    "assets.public" => "Public", "公开";
    "assets.private" => "Private", "私有";
    "assets.copy_link" => "Copy the public link", "复制公开链接";
    "assets.delete_confirm" => "Delete this file for good?", "永久删除此文件？";
    "credits.title" => "Credits", "积分";
    "credits.balance" => "Balance", "余额";
    "credits.reserved" => "Reserved by running tasks", "运行中任务预留";
    "credits.available" => "Available", "可用";
    "credits.packages" => "Buy credits", "购买积分";
    "credits.buy" => "Buy", "购买";
    "credits.no_packages" => "No credit packages are on sale right now.", "目前没有在售的积分套餐。";
    "credits.history" => "History", "记录";
    "credits.type" => "Type", "类型";
    "credits.amount" => "Amount", "数量";
    "credits.after" => "Balance after", "之后余额";
    "credits.when" => "When", "时间";
    "credits.what" => "Description", "说明";
    "credits.checkout_success" => "Thank you! Your payment went through; the credits appear here as soon as the payment provider confirms it.", "谢谢！付款已完成，支付方确认后积分会显示在这里。";
    "credits.checkout_cancelled" => "The checkout was cancelled: nothing was charged.", "结账已取消，未扣款。";
    "credits.redirecting" => "Taking you to the checkout…", "正在前往结账页面…";
    "account.title" => "Account", "账户";
    "account.profile" => "Profile", "个人资料";
    "account.avatar" => "Picture", "头像";
    "account.avatar_change" => "Change the picture", "更换头像";
    "account.avatar_remove" => "Remove the picture", "移除头像";
    "account.saved" => "Saved.", "已保存。";
    "account.unverified" => "Your email is not verified yet.", "你的邮箱尚未验证。";
    "account.resend" => "Send the verification email again", "重新发送验证邮件";
    "account.resent" => "A verification email is on its way.", "验证邮件已发出。";
    "account.password" => "Password", "密码";
    "account.current_password" => "Current password", "当前密码";
    "account.revoke_others" => "Sign out my other sessions", "退出其他会话";
    "account.password_changed" => "Your password is changed.", "密码已更改。";
    "account.keys" => "API keys", "API 密钥";
    "account.keys_help" => "For the CLI, the SDK and your scripts. A key is shown once, when it is made.", "供 CLI、SDK 和脚本使用。密钥只在创建时显示一次。";
    "account.key_name" => "Name", "名称";
    "account.key_scope" => "Scope", "权限";
    "account.key_create" => "Create a key", "创建密钥";
    "account.key_created" => "Your new key (copy it now: it is not shown again):", "新密钥（请立即复制，之后不再显示）：";
    "account.key_prefix" => "Prefix", "前缀";
    "account.key_last_used" => "Last used", "最近使用";
    "account.key_never" => "never", "从未";
    "account.revoke" => "Revoke", "撤销";
    "account.sessions" => "Sessions", "会话";
    "account.this_session" => "this session", "当前会话";
    "account.device" => "Device", "设备";
    "account.address" => "Address", "地址";
    "account.created" => "Created", "创建时间";
    "account.last_used" => "Last used", "最近使用";
    "account.delete" => "Delete the account", "删除账户";
    "account.delete_help" => "Your files, keys and sessions are deleted; this cannot be undone.", "你的文件、密钥和会话都会被删除，无法恢复。";
    "account.delete_confirm" => "Delete your account for good?", "永久删除你的账户？";
    "account.deleted" => "Your account is deleted. Goodbye!", "账户已删除，再见！";
    "notfound.title" => "Not found", "未找到";
    "notfound.text" => "There is nothing at this address.", "这个地址没有内容。";
    "err.INSUFFICIENT_CREDITS" => "You do not have enough credits for this.", "你的积分不足。";
    "err.INVALID_CREDENTIALS" => "The email or the password is wrong.", "邮箱或密码错误。";
    "err.EMAIL_TAKEN" => "An account with this email exists already.", "该邮箱已有账户。";
    "err.RATE_LIMITED" => "Too many attempts. Wait a moment and try again.", "尝试次数过多，请稍后再试。";
    "err.UNAUTHORIZED" => "Please sign in again.", "请重新登录。";
    "err.SESSION_EXPIRED" => "Your session has expired: sign in again.", "会话已过期，请重新登录。";
    "err.USER_BANNED" => "This account is suspended.", "此账户已被停用。";
    "err.UNSUPPORTED_MEDIA_TYPE" => "This type of file is not accepted.", "不接受这种类型的文件。";
    "err.FILE_TOO_LARGE" => "This file is too large.", "文件太大。";
    "err.PASSWORD_TOO_SHORT" => "The password needs 8 characters or more.", "密码至少需要 8 个字符。";
    "err.SIGNUP_DISABLED" => "Sign-up is closed on this server.", "此服务器已关闭注册。";
    "err.EXPIRED_TOKEN" => "This link has expired: ask for a new one.", "此链接已过期，请重新申请。";
    "err.INVALID_USER_CODE" => "This code is unknown or has expired: check what your terminal shows.", "代码无效或已过期，请核对终端显示的代码。";
    "err.IMAGE_URL_REFUSED" => "This image address is not allowed.", "不允许使用这个图片地址。";
    "err.CONTENT_MISMATCH" => "The file is not what its name says (its content was refused).", "文件内容与类型不符，已被拒绝。";
    "err.INVALID_IMAGE" => "This image could not be read.", "无法读取这张图片。";
    "err.QUOTA_EXCEEDED" => "Your storage is full: delete some files first.", "存储空间已满，请先删除一些文件。";
    "err.QUEUE_FULL" => "Many tasks are waiting to run right now. Please try again in a moment.", "当前等待运行的任务很多，请稍后再试。";
    "err.TOO_MANY_STREAMS" => "Too many progress views are open. Close some tabs and reload.", "打开的进度页面过多，请关闭一些标签页后重新加载。";
    "err.INVALID_TOKEN" => "This link is invalid or has expired.", "此链接无效或已过期。";
    "err.PURCHASES_DISABLED" => "Buying credits is not available on this server.", "此服务器不支持购买积分。";
    "err.REAUTHENTICATION_REQUIRED" => "Sign in again, then retry within ten minutes.", "请重新登录，并在十分钟内重试。";
    "err.LAST_SUPER_ADMIN" => "The last super admin cannot be deleted.", "不能删除最后一位超级管理员。";
}

/// Looks messages up in one locale.
#[derive(Debug, Clone, Copy)]
pub struct Tr(pub Locale);

impl Tr {
    /// The message; the key itself when there is none (visible in review, never a panic).
    pub fn s(self, key: &str) -> &'static str {
        MESSAGES
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, en, zh)| if self.0 == Locale::Zh { *zh } else { *en })
            .unwrap_or_else(|| {
                tracing::warn!(key, "web UI message missing from the catalogue");
                "?"
            })
    }

    /// The message with its `{name}` placeholders filled.
    pub fn f(self, key: &str, vars: &[(&str, &str)]) -> String {
        let mut text = self.s(key).to_string();
        for (name, value) in vars {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }

    /// The whole catalogue of this locale as a JSON object (for the page script), made
    /// once per locale.
    pub fn json(self) -> &'static str {
        static EN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| catalogue_json(Locale::En));
        static ZH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| catalogue_json(Locale::Zh));
        if self.0 == Locale::Zh { &ZH } else { &EN }
    }
}

/// The catalogue of `locale` as a JSON object, `<` escaped so that it can sit in a
/// `<script type="application/json">` block.
fn catalogue_json(locale: Locale) -> String {
    let map: serde_json::Map<String, serde_json::Value> = MESSAGES
        .iter()
        .map(|(k, en, zh)| (k.to_string(), (if locale == Locale::Zh { *zh } else { *en }).into()))
        .collect();
    serde_json::Value::Object(map).to_string().replace('<', "\\u003c")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_both_languages_are_filled_with_the_same_placeholders() {
        let mut seen = std::collections::HashSet::new();
        let holes = |s: &str| {
            let mut v: Vec<String> =
                s.split('{').skip(1).filter_map(|p| p.split_once('}').map(|(n, _)| n.to_string())).collect();
            v.sort();
            v
        };
        for (key, en, zh) in MESSAGES {
            assert!(seen.insert(*key), "{key} twice");
            assert!(!en.trim().is_empty() && !zh.trim().is_empty(), "{key} is empty in one language");
            assert_eq!(holes(en), holes(zh), "{key}: the placeholders differ");
        }
    }

    #[test]
    fn the_locale_comes_from_accept_language_by_quality() {
        assert_eq!(Locale::from_accept_language(Some("zh-CN,zh;q=0.9,en;q=0.8")), Locale::Zh);
        assert_eq!(Locale::from_accept_language(Some("fr-FR, en;q=0.5, zh;q=0.4")), Locale::En);
        assert_eq!(Locale::from_accept_language(Some("fr")), Locale::En);
        assert_eq!(Locale::from_accept_language(None), Locale::En);
        assert_eq!(Tr(Locale::Zh).f("header.balance", &[("n", "5")]), "5 积分");
    }
}
